import { Observable, type OperatorFunction } from "rxjs";

/**
 * A map whose state is created per subscription (never at operator creation) and released on
 * teardown. Errors thrown by `step` go to the subscriber, not across the graph.
 */
export function statefulMap<In, Out, State>(
  create: () => State,
  step: (state: State, value: In) => Out,
): OperatorFunction<In, Out> {
  return (source) =>
    new Observable<Out>((subscriber) => {
      const state = create();
      const sub = source.subscribe({
        next(value) {
          let out: Out;
          try {
            out = step(state, value);
          } catch (err) {
            subscriber.error(err);
            return;
          }
          subscriber.next(out);
        },
        error: (err) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => sub.unsubscribe();
    });
}
