"""kneeload's domain science — pure functions, no I/O, no clock, no environment.

Where is X computed? (sources and formulas: docs/science.md, cited in every docstring)

=============================================  ==========================================
estimated PFJ stress, impulse, load per km      :mod:`kneeload.core.pfj`
  one telemetry sample (hot path, never raises)   ``pfj.assess_pfj_sample``
  one sample, raising on implausible input        ``pfj.estimate_pfj_sample``
  with assumptions spelled out (CLI/API)          ``pfj.estimate_pfj``
  effective body weight, Morin peak vGRF          ``pfj.effective_body_weight_n``,
                                                  ``pfj.peak_vgrf_n``
  contact time from speed and cadence (DF model)  ``pfj.estimate_ground_contact_ms``
  one sample's load J·f/60·Δt, its interval Δt     ``pfj.pfj_sample_load_mpa_s``,
                                                  ``pfj.sample_interval_s``
  lab chain (knee moment → stress)                ``pfj.pfj_stress_from_knee_moment_mpa``
  parameters / per-athlete calibration            ``pfj.PfjParams``, ``pfj.PfjCalibration``
input plausibility: bounds, gait, cadence fix   :mod:`kneeload.core.plausibility`
  bounds with their sources                       ``plausibility.PlausibilityBounds.table``
  one sample: estimable, walking, or why not      ``plausibility.check_sample``
session and minute aggregates (the worker's)    :mod:`kneeload.core.session`
  session totals: running sums, per minute        ``session.add_samples``, ``add_to_minutes``
  means, load per km, coverage                    ``session.session_figures``,
                                                  ``session.minute_figures``
session spike (Frandsen 2025), 30-day ceiling   :mod:`kneeload.core.spike`
  longest distance / largest PFJ load, 30 days    ``spike.ceiling``
  ratio, category, the verdict on both measures   ``spike.spike_ratio``, ``spike_category``,
                                                  ``spike.session_spike``
ACWR (EWMA, rolling coupled/uncoupled)          :mod:`kneeload.core.acwr`
  batch, polars in/out                            ``acwr.acwr_frame``
  week-over-week %, monotony, strain, ATL/CTL/TSB ``acwr.load_metrics_frame``, ``acwr.DailyAcwr``
  incremental per athlete (stream)                ``acwr.AcwrState``, ``acwr.AcwrTracker``
  windows, coverage rule                          ``acwr.AcwrConfig``
pain verdicts, baseline, BWS suggestions        :mod:`kneeload.core.pain`
  presets (LEVER default, Silbernagel)            ``pain.LEVER``, ``pain.SILBERNAGEL``
  next-day value (first next-morning report)      ``pain.session_pain``, ``pain.next_day_expected``
  acceptable / caution / stop, safe zone          ``pain.classify_session``
  weekly trend (alert and coaches' overview)      ``pain.weekly_pain_trend``,
                                                  ``pain.pain_trend_label``
  next session's load / support                   ``pain.suggest_load``, ``pain.suggest_bws``
pain–load correlation                           :mod:`kneeload.core.correlation`
  per athlete, lag 0/1, Pearson/Spearman          ``correlation.correlate``,
                                                  ``athlete_correlations``
  per team, repeated measures                     ``correlation.rmcorr``
  incremental                                     ``correlation.PairedObservations``
LEVER fleet: calibration drift per unit         :mod:`kneeload.core.fleet`
  running (belt moving, athlete on), error        ``fleet.is_running``, ``fleet.support_bias_pp``
  per day: bias, MAE; trend over days             ``fleet.calibration_summary``,
                                                  ``fleet.drift_trend_pp_per_day``
  drift episode (running time out of tolerance)   ``fleet.advance_drift``
LEVER fleet: utilisation against opening hours  :mod:`kneeload.core.utilisation`
  opening hours (local, DST-aware) → UTC          ``utilisation.open_intervals_utc``
  status history → in use / idle / offline        ``utilisation.state_intervals``
  minutes per state within the hours, per day     ``utilisation.utilisation_day``
LEVER fleet: outcomes per unit / clinic         :mod:`kneeload.core.outcomes`
  pain trajectory, BWS progression, flares        ``outcomes.pain_trajectory``,
                                                  ``bws_progression``, ``count_pain_flares``
  per group with n, withheld below min n          ``outcomes.group_outcomes``, ``rank_groups``
alert rules and cooldown                        :mod:`kneeload.core.alerts`
alert episodes: opened / escalated / resolved   :mod:`kneeload.core.episodes`
  one observation, a replay                       ``episodes.advance``, ``episodes.replay``
=============================================  ==========================================

Every PFJ figure is a model ESTIMATE, not a measurement. ACWR is a trend, not a
validated injury threshold (Impellizzeri et al. 2020).
"""
