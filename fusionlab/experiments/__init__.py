"""Experiments: profiles, data, the model table, runs, results with provenance, statistics
and the chapters' tables.

- ``profiles``: ``FUSIONLAB_PROFILE`` (smoke, cpu, gpu) and what it sets.
- ``data``: CamVid for a profile, or the announced SyntheticScenes fallback.
- ``builders``: the one table of models shared with the command line.
- ``spec`` and ``ablations/<paper>.py``: each paper's variants and its own numbers.
- ``runner``, ``store``: train every variant for every seed; results files with provenance.
- ``stats``: summaries over seeds, gains paired by seed with a 95% Student-t interval.
- ``report``: the live run, results and gains tables, the provenance line.

Command line::

    python -m fusionlab experiment run fusion-levels --profile cpu --seeds 0 1 2
"""

from fusionlab.experiments.ablations import EXPERIMENTS
from fusionlab.experiments.builders import (MODELS, BuildContext, Variant, build_model,
                                            parse_options)
from fusionlab.experiments.data import Data, load_data
from fusionlab.experiments.curves import (IMAGENET, SCHEDULES, curve_summary,
                                          learning_curve, load_footings, reference_schedule)
from fusionlab.experiments.profiles import (ENCODERS, PROFILES, Profile, build_encoder,
                                            costs_profile, get_profile, imagenet_or_scratch,
                                            train_config, with_encoder)
from fusionlab.experiments.report import (auxiliary_losses_text, check_live, costs_table,
                                          curve_mean_text, curves_table, doubling_text,
                                          footing_reading, footing_table, footings_overview,
                                          footings_tally, gain_clause, gain_text, gain_verdict,
                                          gains_table, live_run, live_summary, model_costs,
                                          precision_speed, precision_speed_text, precision_text,
                                          provenance_line, real_gains, results_table,
                                          schedule_sentence, unlearned_classes, variants_table)
from fusionlab.experiments.runner import get_experiment, run_experiment
from fusionlab.experiments.spec import Experiment, PaperNumber
from fusionlab.experiments.stats import (class_gain_summary, class_gains, mean_interval,
                                         paired_gain, precision_effect, shared_seeds,
                                         summarise, t_interval, thin_iou)
from fusionlab.experiments.store import (ResultsConflict, load_results, merge_results,
                                         read_results, results_path)

__all__ = ["EXPERIMENTS", "MODELS", "BuildContext", "Variant", "build_model", "parse_options",
           "Data", "load_data", "ENCODERS", "PROFILES", "Profile", "build_encoder", "costs_profile",
           "get_profile", "imagenet_or_scratch", "with_encoder", "train_config", "IMAGENET",
           "SCHEDULES", "load_footings", "curve_summary", "learning_curve", "reference_schedule",
           "auxiliary_losses_text", "check_live", "costs_table", "curve_mean_text", "curves_table",
           "doubling_text", "schedule_sentence", "footing_reading", "footing_table",
           "footings_overview", "footings_tally", "gain_clause", "gain_text", "gain_verdict",
           "gains_table", "live_run", "live_summary", "model_costs", "precision_speed",
           "precision_speed_text", "precision_text", "provenance_line", "real_gains",
           "results_table", "unlearned_classes", "variants_table",
           "get_experiment", "run_experiment", "Experiment", "PaperNumber", "class_gain_summary",
           "class_gains", "mean_interval", "paired_gain", "precision_effect", "shared_seeds",
           "summarise", "t_interval", "thin_iou", "ResultsConflict", "load_results",
           "merge_results", "read_results", "results_path"]
