import { z } from "zod";

/** Process-level (RESIN level 2) leak detection on hourly per-process aggregates. */
export const DetectConfig = z.strictObject({
  /** Hourly levels kept per series for the pattern, breakout and shape checks. */
  ringHours: z.number().int().min(8).max(256).default(48),
  /** Shortest suspicious interval, in windows. */
  minHours: z.number().int().min(1).default(3),
  /** Growth over the interval must exceed this many level-noise units. */
  sigmas: z.number().positive().default(5),
  /** ... and at least this share of the process's size (log scale, 0.02 ≈ 2%). */
  minRelGrowth: z.number().nonnegative().default(0.02),
  /**
   * ... and at least this many bytes (0: no floor). Growth that no one would act on, whatever its
   * shape: e.g. a few MB in a small process on a host watched with time compressed.
   */
  minGrowthBytes: z.number().nonnegative().default(0),
  /** Goodness of the linear fit over the interval. */
  minR2: z.number().min(0).max(1).default(0.5),
  /** Fit the interval through a 5-hour running median (bursts of an hour or two are not trend). */
  despikeFit: z.boolean().default(true),
  /**
   * Judge "above yesterday", "above the day before" and the peers' daily wander on levels
   * without bursts (running medians, trimmed ranges): a component with bursts a few times a
   * day otherwise sets a bar that no leak clears.
   */
  burstRobust: z.boolean().default(true),
  /**
   * A single hour may not carry more than this share of the growth, unless a second jump came
   * too (see `secondJumpShare`).
   */
  maxStepShare: z.number().min(0).max(1).default(0.6),
  /** An hourly change above this many noise units is a jump. */
  jumpSigmas: z.number().positive().default(4),
  /**
   * For the one-step test, a second jump counts only when it is at least this share of the
   * largest (0: any jump counts). A spike leak's jumps are of a kind (the same leak, one gap's
   * worth each); a tenant who moves in makes one large step, and the wander of the hours
   * around it can add a small jump that is no second step of anything.
   */
  secondJumpShare: z.number().min(0).max(1).default(0.33),
  /** Growth made mostly of one or two jumps must hold this many windows after the last jump. */
  jumpHoldHours: z.number().int().nonnegative().default(6),
  /**
   * The one-step test does not count a rise that the next two levels give back but for a quarter
   * or less (only what they hold of it): a burst of an hour or two is no step. Without this, one
   * burst inside a stair leak's interval is its "one step" until the stairs outgrow it.
   */
  heldSteps: z.boolean().default(true),
  /**
   * A climb of a jump in each of the last three hours, each at least `secondJumpShare` of the
   * largest rise, need not hold first (see `jumpHoldHours`). A fast leak on a quiet series rises
   * by a jump every hour; a burst, even a cluster of them, gives its memory back in between.
   * Not for a series in its warm-up: a refill climbs as fast, then slows.
   */
  jumpClimb: z.boolean().default(true),
  /**
   * Floor of a sawtooth: a series whose hourly levels jump up and down (a GC or cache cycle of a
   * few hours, sampled hourly) but whose lows hold steady is judged again on its lows, the
   * lowest of its last `floorHours` levels (0: not). A leak under such a sawtooth lifts the
   * lows long before the level clears the sawtooth's noise.
   */
  floorHours: z.number().int().min(0).max(24).default(6),
  /** The lows' noise must be at most this share of the hourly level noise (a sawtooth, not plain noise). */
  floorNoiseShare: z.number().min(0).max(1).default(0.1),
  /**
   * Growth of the lows must be at least this much (log scale, 0.08 ≈ 8%): the lows of a healthy
   * sawtooth still wander by a few percent over days, and their own noise is read from few falls.
   */
  floorMinGrowth: z.number().nonnegative().default(0.08),
  /** Windows that must agree before a suspect opens (the last one among them)... */
  confirmWindows: z.number().int().min(1).max(8).default(2),
  /**
   * ... within this many of the series' latest windows (at least `confirmWindows`; equal: in a
   * row). A leak near the bar passes and fails by turns; a transient passes once.
   */
  confirmSpan: z.number().int().min(1).max(8).default(3),
  /** Fewest peers for the common-mode (fleet-wide) correction of a group. */
  minPeers: z.number().int().min(2).default(5),
  /** Age (hours since the process started) below which a series is young: it must keep its pace (a warm-up decelerates, a leak does not). */
  warmupHours: z.number().int().min(1).max(240).default(24),
  /** Shortest interval for a young series. */
  youngMinHours: z.number().int().min(2).default(4),
  /**
   * A process that is new to the detector (no history before its start: its host joined the
   * fleet) is not judged for this many hours of its life (0: it is). Its every hour so far is its
   * warm-up, and a warm-up along an S-curve (slow, fast, slow) keeps its pace for hours; a
   * restarted process has its predecessor's levels to be judged against, a new one has none.
   */
  newWarmupHours: z.number().nonnegative().default(24),
  /**
   * When a young series' interval (from the restart's low) fails the pace check, try its later
   * halves too: a leak that began with a restart shows its pace once the warm-up is over.
   */
  youngHalving: z.boolean().default(true),
  /** A young series' second half of the interval must grow at least this share of the first half. */
  youngPace: z.number().min(0).max(1).default(0.6),
  /** Older interval starts must be lower by this many level-noise units per hour to be chosen. */
  driftAllowance: z.number().nonnegative().default(0.25),
  /** The fixed drift allowance of the second candidate interval (log scale per hour; 5e-4 ≈ 1.2%/day). */
  minDriftPerHour: z.number().nonnegative().default(5e-4),
  /** Floor of the level noise (log scale). */
  noiseFloor: z.number().positive().default(0.0015),
  /**
   * In a component whose memory follows the VM count, the peers' median movement counts as
   * common only beyond this many standard errors from zero (elsewhere it counts as it is).
   */
  commonModeSigmas: z.number().nonnegative().default(3),
  /**
   * Levels from before the process's last restart, in the "above yesterday" and "above the day
   * before" checks, are lowered by what the restart gave back: a leak that resumes after a restart
   * is compared with the day before as it would have been without the leaked memory, not with the
   * leak's own peak (which it would have to pass before it is flagged again).
   */
  restartShift: z.boolean().default(true),
  /** Check each peer group's common mode for group-wide leak-like growth (and keep it in the members' levels). */
  groupTrends: z.boolean().default(true),
  /**
   * Consecutive windows a group's common mode must grow like a leak before the group counts as
   * leaking. More than a series needs (`confirmWindows`): the verdict acts on every member at
   * once, and a common mode climbs for hours on its own during a rolling deploy of a version that
   * needs more memory, or a config push on a diurnal upswing, and then holds, as a leak does not.
   */
  groupConfirmWindows: z.number().int().min(1).default(6),
  /** A component follows the VM count when its hosts agree on at least this memory per VM (log scale). */
  minPerVm: z.number().nonnegative().default(0.002),
  /** In a VM-following component, windows after a VM change in which memory settles (stitched, or no interval starts before they end). */
  vmSettleHours: z.number().int().nonnegative().default(1),
  /**
   * In a VM-following component, a VM change and the `vmSettleHours` windows after it move the
   * level only by what the VMs explain, and the interval runs on across the change (instead of
   * restarting after it), its bar raised for the noise each such window took out (false: the
   * interval restarts). It needs the component's memory per VM to be steady: decided per window
   * from that window's few hosts, a component stopped following its VM count for a window now
   * and then, the VM step of that window stayed in the level, and in the closed loop three
   * healthy hosts that had taken in migrated VMs were flagged and rebooted.
   */
  vmStitch: z.boolean().default(true),
  /**
   * The variance each stitched window adds to an interval's growth, in units of the growth's own
   * (a stitched hour's change has the variance of the growth between two levels: 1 is the noise
   * alone; 2 also covers starting the interval where the rise looks largest).
   */
  stitchVariance: z.number().nonnegative().default(2),
  /**
   * Judge the processes that restarted into the same new version of a component (within
   * `ringHours`) together, too: a leaking version leaks on all of them, and their median rises
   * out of the noise hours before any one host's level does (see `cohortGrowthStart`). While the
   * cohort grows like a leak, a member is flagged on its own growth since the cohort's began:
   * beyond twice its noise, between a third and three times the cohort's, and above the same
   * hours of the day before. A restart into the version the process already ran is no member.
   */
  cohorts: z.boolean().default(true),
  /** Fewest hosts in a version cohort. */
  minCohort: z.number().int().min(2).default(3),
  /**
   * The largest share of a component's reporting series that may run a cohort's version for the
   * cohort to be judged (1: any). A version on (nearly) all of them, a rolling deploy at its end,
   * is what their common mode follows, and each level is read against that common mode: as it
   * settles after the deploy, or swings with a shared diurnal, it moves all members at once,
   * which the cohort's median reads as shared growth. A leak on all hosts moves the component's
   * common mode itself, which the group check watches (see `groupTrends`).
   */
  cohortMaxShare: z.number().positive().max(1).default(0.9),
  /**
   * A cohort is judged only once no host has joined it for this many windows (0: always). A
   * rolling deploy that is still going adds hosts every hour or two, each warming up in its own
   * hours, and over the newest hours their median climbs at a steady pace for as long as the
   * deploy goes on; a canary's hosts restart within an hour or so, and its cohort cannot pass
   * before `minHours` anyway. A leaking version rolled out slowly is judged between its waves,
   * and its hosts on their own meanwhile. At 3, fast canaries whose hosts restarted over an hour
   * or two were raised 1–2 hours later; at 2 they are not, and the deploys are still held.
   */
  cohortSettleHours: z.number().int().nonnegative().default(2),
  /**
   * A cohort's median level above the day before, and its median growth, must stand this many
   * standard errors above zero (a series' growth is held to `sigmas`). Fewer than a series needs:
   * a window tests thousands of series and a handful of cohorts, so at this bar chance passes
   * are rarer among the cohorts than at `sigmas` among the series. What holds a rolling deploy's
   * warm-ups back is `cohortSettleHours`, the cohort's pace and one-step tests and its two
   * passes in three windows, not this bar: at 3 instead of 4, 48 fleets of both generators
   * found 50 leaks sooner and raised no false suspect more.
   */
  cohortSigmas: z.number().positive().default(3),
  /**
   * A member of a leaking cohort also shows its own growth when its day-over-day change grew as
   * much, and by twice its day-over-day wobble (see `growsAgainstYesterday`): a daily curve of its
   * own, left in its level net of its peers' common mode, can hide a leak's first hours. On 130
   * fleets of both generators: 123 leaks found sooner (−649 h), none later, no suspect gained or lost.
   */
  memberDayOverDay: z.boolean().default(true),
  /**
   * An interval's growth over h windows (its fit through a 5-hour running median) must exceed
   * this many standard deviations of how far the series itself falls over h windows (see
   * `ownWander`); 0: off. The level noise is an hour's: a series whose level wanders for hours
   * (a slow random walk, load) rises by many hours' noise and falls back.
   */
  wanderSigmas: z.number().nonnegative().default(4),
  /**
   * An interval within its own wander still passes that test when its growth against the day
   * before clears it (see `outgrowsWanderAgainstYesterday`): a daily curve of the series' own (deeper
   * than its peers', or at other hours), left in its level net of their common mode, is its wander
   * over hours, and cancels against the same hours of the day before. Only the growth both
   * readings agree on counts, and not if one hour, or two rising in a row, carries most of it. On 138 fleets of both
   * generators: 68 leaks found sooner (−606 h), 4 more found, none later; altgen 7 more false
   * suspects (338 → 345), ours none.
   */
  wanderDayOverDay: z.boolean().default(true),
  /**
   * A lone step is taken out of the growth that the wander tests judge (the series' own wander,
   * its change against the day before, its peers' daily wander). A lone step is the largest rise
   * of the interval's 5-hour running median over one hour or two in a row, above the jump size
   * (`jumpSigmas`), with no other rise apart from it above the jump size and at least
   * `secondJumpShare` of it. A tenant who moves in steps once and holds, and the wander next to
   * the step must not make the two add up to a leak; a leak keeps growing, or steps again.
   * Over 146 fleets: altgen's false suspects 359 → 270; ours the same, 6 of 1,777 leaks lost and
   * 88 later (+636 h, most of it spike leaks that now wait for their second jump).
   */
  loneStepNet: z.boolean().default(true),
  /** Fewest falls over h windows that `wanderSigmas` needs (else it does not apply). */
  wanderMinFalls: z.number().int().min(3).default(6),
  /** Half-life of each series' baseline against its peers, in windows. */
  baselineHalfLife: z.number().positive().default(72),
  /** Half-life of the per-series noise estimate, in windows. */
  noiseHalfLife: z.number().positive().default(48),
  /**
   * Growth a series without a day of history must beat in the detector's first day (log scale;
   * 1: 2.7×): no series has a yesterday yet to compare a daily curve, a slow wander or a cluster
   * of bursts with, nor do its peers, so a leak that begins then is found once the day is over.
   */
  firstDayWander: z.number().nonnegative().default(1),
  /** ... and after it, while no peer has a day of history either (a series without peers). */
  unknownWander: z.number().nonnegative().default(0.25),
  /**
   * Growth over an interval with less than a day before it (one that starts in the series' first
   * day, or one too long for the ring to hold a day before it) must beat this quantile of the
   * peers' daily ranges (burst-robust; the series' own range left out). The bar is applied to
   * every such series in every window, so few healthy ones may exceed it: at 0.8 one in five
   * did, and those that wandered up all of their first day passed it.
   */
  wanderQuantile: z.number().min(0).max(1).default(0.95),
  /** The level must exceed the same hour of the day before by this many of its day-over-day wobbles. */
  seasonalSigmas: z.number().nonnegative().default(3),
  /**
   * ... and by this share of its peers' day-over-day spread at the least (0: off). A series
   * learns its own wobble slowly, from its falls, starting from a guess: until it has, a series
   * that wanders more than the guess rises above yesterday by chance; and a series quieter than its
   * peers is not a leak when it moves as much as they do every day. The peers' spread is this
   * window's, across the component's hosts (from their falls), so it is there from the detector's
   * second day on.
   */
  peerDayFloor: z.number().nonnegative().default(1),
  /**
   * ... times sqrt(ln n / ln this) when the spread was read across n series, more than this (0:
   * off). The spread is the typical series'; the widest of n healthy series wobbles about
   * sqrt(2 ln n) of it, so a component on many hosts has more series that clear a fixed share
   * by chance every day. At this many series the share is `peerDayFloor` itself.
   */
  peerDayRefSeries: z.number().nonnegative().default(20),
  /**
   * For a process whose lineage was flagged (it continues, through one restart or more, the
   * history of a process that was suspected when it restarted: resin restarted a leak), "above
   * yesterday" also passes
   * when the median of the last `seasonalSpan` hours beats the median of the same hours
   * yesterday by `seasonalSigmas` of that statistic's own day-over-day wobble (1: off). A GC
   * sawtooth whose period does not divide the day puts the same hour yesterday at a random phase:
   * its single-hour wobble is the sawtooth's depth, a bar a resumed leak may never clear, while
   * medians over a span longer than the period cancel the phase. Only for such lineages: on every series
   * it also flagged healthy diurnal ones over 30 days of the closed loop.
   */
  seasonalSpan: z.number().int().min(1).max(12).default(7),
  /**
   * Long climb: a slow leak under a deep GC sawtooth or a diurnal curve may never clear the
   * hourly tests within the ring, yet its calendar-day medians (which cancel both) climb day
   * after day. Flagged when the last 24 hours' median has climbed since the day three days back
   * by more than the healthy peers' climbs (their median plus `climbSigmas` standard deviations,
   * read from the half below it), their median plus `minRelGrowth` (in a small group their common
   * mode drifts, and peers that climb as one leave no spread to stand on), and `wanderSigmas` of
   * the series' own wander,
   * with no restart since (in a component that follows the VM count, nor VMs come or gone in
   * the last two days); and day after day at a pace: of three daily steps (the day before
   * yesterday over that day, yesterday over the day before, the last 24 hours over the 24
   * before), the smallest at least `climbStepShare` of the largest. A held step or a ramp that
   * stopped (a tenant that moved in, a cache that filled) makes one or two of them, and not the
   * third.
   */
  longClimb: z.boolean().default(true),
  climbSigmas: z.number().positive().default(5),
  climbStepShare: z.number().min(0).max(1).default(0.33),
  /**
   * After a restart (or reset) within those days, the long climb runs over two days instead of
   * three, from the day before yesterday, when that day began at least six hours after it; the
   * climb is held to the same bar, and its two steps to `climbStepShare` of each other.
   */
  climbAfterRestart: z.boolean().default(true),
  /** The level must break out above the highest level of this many hours before the interval. */
  breakoutHours: z.number().int().nonnegative().default(24),
});
export type DetectConfig = z.infer<typeof DetectConfig>;
export type DetectConfigInput = z.input<typeof DetectConfig>;
