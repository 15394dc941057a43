// ml-regression ships no type declarations; its SimpleLinearRegression is the typed
// class of ml-regression-simple-linear (a dependency it re-exports), so point at that.
declare module "ml-regression" {
  export { SimpleLinearRegression } from "ml-regression-simple-linear";
}
