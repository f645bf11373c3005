"""What the chapters show of experiments: the live run, results tables, paired gains beside the
paper's numbers, and the provenance line. Chapters call these instead of copying cells.

Tables are Markdown strings (the book renders them as tables); metrics are shown in percent.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from fusionlab.bench import (count_flops, count_parameters, forward_latency, training_memory,
                             training_step_time)
from fusionlab.experiments.builders import BuildContext, Variant, build_model
from fusionlab.experiments.curves import (CONVERGED_GAIN, curve_summary, load_footings,
                                          reference_schedule)
from fusionlab.experiments.data import Data
from fusionlab.experiments.profiles import Profile, train_config
from fusionlab.experiments.spec import Experiment
from fusionlab.experiments.stats import (CONFIDENCE, finite_mean, paired_gain,
                                         per_class_values, precision_effect, run_precision,
                                         shared_seeds)
from fusionlab.experiments.store import provenance_commits, with_defaults
from fusionlab.losses import SegmentationLoss
from fusionlab.models.base import SegmentationModel
from fusionlab.notebook import markdown_table
from fusionlab.speed import PRECISION_NAMES
from fusionlab.train import TrainResult, seed_everything, train

METRIC_TITLES = {"miou": "mIoU", "thin_iou": "thin-class IoU", "boundary_f": "boundary F",
                 "pixel_accuracy": "pixel accuracy"}


@dataclass
class LiveRun:
    """One model trained in this build: the model and its ``TrainResult``."""

    model: SegmentationModel
    result: TrainResult


def live_run(variants: dict[str, Variant], data: Data, profile: Profile, seed: int = 0,
             progress: bool = False, steps: int | None = None) -> dict[str, LiveRun]:
    """Train each variant once with ``seed`` in ``profile`` (the chapter's live run).

    Args:
        steps: train this many steps instead of the profile's (a chapter whose models are
            too slow for its time budget says so in its text).

    Raises:
        ValueError: an unknown model or option (see ``build_model``).
    """
    context = BuildContext(len(data.classes), profile, data.train)
    overrides = {"progress": progress, **({"steps": steps} if steps else {})}
    runs = {}
    for label, variant in variants.items():
        seed_everything(seed)
        model = build_model(variant, context)
        runs[label] = LiveRun(model, train(model, data.train, data.val,
                                           train_config(profile, seed, **overrides)))
    return runs


def live_summary(live: dict[str, LiveRun]) -> str:
    """One line per live run: its mIoU, pixel accuracy and boundary F-score on the validation
    split (fractions) and its training time (seconds), the names padded to one width."""
    width = max(map(len, live), default=0)
    return "\n".join(
        f"{name:{width}s}  mIoU {m['miou']:.3f}  pixel accuracy {m['pixel_accuracy']:.3f}  "
        f"boundary F {m['boundary_f']:.3f}  ({run.result.train_seconds:.0f} s of training)"
        for name, run in live.items() for m in [run.result.metrics])


def check_live(live: dict[str, LiveRun], data: Data, profile: Profile,
               floors: dict[str, float]) -> dict[str, dict]:
    """Check what a chapter's live runs reached before its prose quotes them: every mIoU in
    [0, 1] with one IoU per class and, where the profile trains for real on CamVid (not
    ``Profile.checks_only``, no synthetic fallback), each model of ``floors`` above its floor
    (a level far above chance, which a run that trained nothing stays below).

    Returns:
        name -> the run's validation metrics (``TrainResult.metrics``).

    Raises:
        KeyError: a floor for a model that was not trained live.
        ValueError: an mIoU outside [0, 1], per-class IoUs not one per class, or an mIoU at or
            below its floor (names the model, the value and the floor).
    """
    unknown = sorted(set(floors) - set(live))
    if unknown:
        raise KeyError(f"floors for {unknown}, which were not trained live: {sorted(live)}")
    metrics = {name: run.result.metrics for name, run in live.items()}
    for name, m in metrics.items():
        if not 0 <= m["miou"] <= 1 or len(m["iou"]) != len(data.classes):
            raise ValueError(f"{name}: mIoU {m['miou']} with {len(m['iou'])} per-class IoUs, "
                             f"expected one in [0, 1] and {len(data.classes)}")
    if not profile.checks_only and not data.is_fallback:
        low = {n: metrics[n]["miou"] for n, floor in floors.items() if metrics[n]["miou"] <= floor}
        if low:
            raise ValueError(f"live runs at or below their mIoU floors {floors}: {low}; a run "
                             f"of the {profile.name} profile on CamVid trains far above chance")
    return metrics


def model_costs(variants: dict[str, Variant], context: BuildContext, batch_size: int,
                repeats: int = 10, steps: int = 3) -> dict[str, dict]:
    """What each model costs on the CPU, measured in this process, one model after the other.

    Per label: ``params``; ``gflops`` (one image at the profile's size,
    ``fusionlab.bench.count_flops``); ``fp32_ms`` and ``bf16_ms``, the median forward latency
    of one image over ``repeats`` runs (``forward_latency``; bf16 under autocast);
    ``memory_mb``, one training step's memory for a batch of ``batch_size``
    (``training_memory``, MiB); ``step_ms``, the time of a training step of that batch in
    float32 (``training_step_time``, over ``steps`` steps); and ``threads``.

    Raises:
        ValueError: an unknown model or option (see ``build_model``).
    """
    size = context.profile.size
    costs = {}
    for label, variant in variants.items():
        model = build_model(variant, context)
        latency = {p: forward_latency(model, size, repeats=repeats, precision=p)["median_s"]
                   for p in ("fp32", "bf16")}
        memory = training_memory(model, batch_size, size, context.num_classes)
        costs[label] = {"params": count_parameters(model),
                        "gflops": count_flops(model, size) / 1e9,
                        "fp32_ms": 1000 * latency["fp32"], "bf16_ms": 1000 * latency["bf16"],
                        "memory_mb": memory["total_bytes"] / 2**20,
                        "threads": torch.get_num_threads()}
        step = training_step_time(model, batch_size, size, context.num_classes, steps)
        costs[label]["step_ms"] = 1000 * step["seconds_per_step"]  # the model is trained now
    return costs


def variants_table(variants: dict[str, Variant], context: BuildContext,
                   describe: Callable[[str, Variant, SegmentationModel], dict[str, object]]
                   | None = None, decoder: bool = False) -> tuple[str, dict[str, dict]]:
    """The variants side by side with what they cost: a Markdown table and its numbers.

    Every variant is built (``build_model``) and counted on one image at the profile's size,
    in eval mode with every auxiliary head (``fusionlab.bench.count_flops``); nothing is
    trained or timed (``model_costs`` times).

    Args:
        variants: label -> ``Variant``, one row each, in this order.
        context: what the builders need (classes, profile, training split).
        describe: ``(label, variant, model) -> {header: cell}``, the cells written after the
            label, the same headers for every row; ``None``: one column "options"
            (``Variant.options_text``, "(none)" if there are none).
        decoder: add the decoder's GFLOPs, the model's minus its encoder's.

    Returns:
        (the table: label, ``describe``'s columns, [decoder GFLOPs], GFLOPs, parameters; per
        label ``{"gflops", "params"}``, and ``"decoder_gflops"`` with ``decoder``).

    Raises:
        ValueError: rows described with different headers; an unknown model or option (see
            ``build_model``).
    """
    if describe is None:
        def describe(label, variant, model):
            return {"options": variant.options_text() or "(none)"}
    size = context.profile.size
    rows, costs, headers = [], {}, None
    for label, variant in variants.items():
        model = build_model(variant, context)
        cells = describe(label, variant, model)
        if headers is not None and list(cells) != headers:
            raise ValueError(f"every row needs the columns {headers}, {label!r} has {list(cells)}")
        headers = list(cells)
        cost = {"gflops": count_flops(model, size) / 1e9, "params": count_parameters(model)}
        if decoder:
            cost["decoder_gflops"] = cost["gflops"] - count_flops(model.encoder, size) / 1e9
        costs[label] = cost
        rows.append([label, *cells.values(),
                     *([f"{cost['decoder_gflops']:.3f}"] if decoder else []),
                     f"{cost['gflops']:.3f}", f"{cost['params']:,}"])
    header = ["variant", *(headers or []), *(["decoder GFLOPs"] if decoder else []),
              "GFLOPs (1 image)", "parameters"]
    return markdown_table(header, rows), costs


@torch.no_grad()
def auxiliary_losses_text(model: SegmentationModel, profile: Profile) -> str:
    """The auxiliary outputs ``model`` trains with under ``profile`` and their loss weights,
    for a table: ``"ss_c2 (0.4), ..., ecre (0.4)"``, or ``"none"``.

    The terms are the training loop's (``SegmentationLoss.for_model`` with the profile's
    ``aux_weight``): the model's own ``aux_losses()`` where it declares them, else the one
    weight on every auxiliary output. The outputs are found by one forward pass of a zero
    image of the profile's size in eval mode; the model's mode is restored.
    """
    was_training = model.training
    device = next(model.parameters()).device
    names = model.eval()(torch.zeros(1, 3, *profile.size, device=device)).aux
    model.train(was_training)
    terms = SegmentationLoss.for_model(model, train_config(profile).aux_weight).terms(names)
    return ", ".join(f"{name} ({term.weight:g})" for name, term in terms.items()) or "none"


def costs_table(costs: dict[str, dict]) -> str:
    """Markdown table of ``model_costs``, its headers short enough for the book's column:
    parameters (millions), GFLOPs, CPU latency per image in fp32 and bf16 (ms), training
    memory (MiB) and the time of a training step (ms)."""
    return markdown_table(
        ["model", "params (M)", "GFLOPs", "fp32 (ms)", "bf16 (ms)", "memory (MiB)", "step (ms)"],
        [[label, f"{c['params'] / 1e6:.2f}", f"{c['gflops']:.2f}", f"{c['fp32_ms']:.1f}",
          f"{c['bf16_ms']:.1f}", f"{c['memory_mb']:.0f}", f"{c['step_ms']:.0f}"]
         for label, c in costs.items()])


def precision_speed(costs: dict[str, dict], tolerance: float = 0.05) -> dict[str, list[str]]:
    """The models of ``model_costs`` by how bfloat16 autocast's latency compares with float32's:
    ``{"faster": [...], "tie": [...], "slower": [...]}``, labels in ``costs`` order.

    A model whose latencies differ by ``tolerance`` (a fraction of the float32 time) or less
    is a tie: medians of a few repeats on a shared machine move by a few percent between
    builds, so a smaller difference would flip from build to build.

    Raises:
        ValueError: no models, a tolerance outside (0, 1), or a latency that is not a
            positive number.
    """
    if not costs or not 0 < tolerance < 1:
        raise ValueError(f"need models and a tolerance in (0, 1), got {len(costs)} model(s) "
                         f"and {tolerance}")
    groups = {"faster": [], "tie": [], "slower": []}
    for label, c in costs.items():
        if not all(math.isfinite(c[k]) and c[k] > 0 for k in ("bf16_ms", "fp32_ms")):
            raise ValueError(f"{label}: latencies must be positive milliseconds, got "
                             f"bf16 {c['bf16_ms']} and fp32 {c['fp32_ms']}")
        ratio = c["bf16_ms"] / c["fp32_ms"]
        groups["faster" if ratio < 1 - tolerance else
               "slower" if ratio > 1 + tolerance else "tie"].append(label)
    return groups


def precision_speed_text(groups: dict[str, list[str]], tolerance: float = 0.05) -> str:
    """One sentence for ``precision_speed``'s groups (made with the same ``tolerance``):
    ``"On this CPU bfloat16's latency is more than 5% below float32's for A; within 5% of it
    for B; more than 5% above it for C and D."``

    Raises:
        ValueError: groups without a model.
    """
    if not any(groups.values()):
        raise ValueError(f"need the groups of at least one model, got {groups}")
    margin = f"{100 * tolerance:g}%"
    phrases = {"faster": f"more than {margin} below", "tie": f"within {margin} of",
               "slower": f"more than {margin} above"}
    total = sum(map(len, groups.values()))
    parts = []
    for key, names in groups.items():
        if names:
            whom = "every model" if len(names) == total else _and_list(names)
            than = "it" if parts else "float32's"
            parts.append(f"{phrases[key]} {than} for {whom}")
    return f"On this CPU bfloat16's latency is {'; '.join(parts)}."


def _and_list(items: list[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _pct(x: float, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}"


def _cell(summary: dict) -> str:
    text = _pct(summary["mean"])
    if summary.get("n") != 1:  # one seed has no spread to show
        text += f" ± {_pct(summary['std'])}"
    if summary.get("nan"):
        text += f" ({summary['nan']} NaN)"
    return text


def results_table(results: dict, metrics=("miou", "thin_iou", "boundary_f"),
                  variants: list[str] | None = None) -> str:
    """Markdown table of stored results: one row per variant (all, or ``variants`` in that
    order, skipping those not run), mean ± sample std over seeds in percent (the value alone
    for one seed).

    Raises:
        KeyError: a metric the summary does not hold.
    """
    summary = results["summary"]
    return markdown_table(
        ["variant", "seeds", *(METRIC_TITLES.get(m, m) + " (%)" for m in metrics)],
        [[v, len(summary[v]["seeds"]), *(_cell(summary[v][m]) for m in metrics)]
         for v in (variants or list(summary)) if v in summary])


MIXED_MARK = "†"
"""Marks a seed whose paired runs trained at different autocast precisions."""

MIXED_NOTE = (f"{MIXED_MARK} The two runs of this seed trained at different autocast precisions "
              "(each run stores its own under `speed`), so this difference holds the "
              "precision's effect as well as the variant's.")
"""The note under a ``gains_table`` with a ``MIXED_MARK``."""


def gains_table(results: dict | None, experiment: Experiment,
                pairs: list[tuple[str, str]] | None = None,
                metrics=("miou", "thin_iou", "boundary_f")) -> str:
    """Markdown table of gains paired by seed, beside the paper's gain where it has one.

    Args:
        results: the stored results; ``None`` (none stored yet) gives a sentence saying so.
        pairs: (base, variant) pairs; default every paper number with a ``base``.

    Columns: the step, the paper's gain (mIoU points), our mean gain per metric with its 95%
    Student-t interval, the per-seed mIoU gains, and whether the mIoU gain is real (its interval
    excludes 0; n/a for one seed, which has no interval). Pairs without a seed run for both
    variants are skipped. A seed whose two runs trained at different autocast precisions
    (``paired_gain``'s ``mixed_precision``) carries ``MIXED_MARK``, explained by ``MIXED_NOTE``
    below the table.
    """
    if results is None:
        return f"The reference results of {experiment.name} are not stored yet: no gains to show."
    if pairs is None:
        pairs = [(p.base, v) for v, p in experiment.paper.items() if p.base]
    level = f"{100 * CONFIDENCE:.0f}%"
    rows, mixed = [], False
    for base, variant in pairs:
        if not shared_seeds(results, base, variant):
            continue
        paper = experiment.paper.get(variant)
        paper_text = f"{paper.value:+.1f}" if paper and paper.base == base else ""
        gains = {m: paired_gain(results, base, variant, m) for m in metrics}
        cells = [f"{_pct(g['mean'], True)} [{_pct(g['ci'][0], True)}, {_pct(g['ci'][1], True)}]"
                 for g in gains.values()]
        first = gains[metrics[0]]
        per_seed = ", ".join(_pct(x, True) + (MIXED_MARK if s in first["mixed_precision"] else "")
                             for s, x in zip(first["seeds"], first["gains"]))
        mixed = mixed or bool(first["mixed_precision"])
        real = ("n/a" if not math.isfinite(first["ci"][0])  # one seed
                else "yes" if first["real"] else "no")
        rows.append([f"{variant} vs {base}", paper_text, *cells, per_seed, real])
    table = markdown_table(["step", "paper", *(f"ours: {METRIC_TITLES.get(m, m)} [{level} CI]"
                                               for m in metrics), "per seed (mIoU)", "real?"],
                           rows)
    return table + (f"\n\n{MIXED_NOTE}" if mixed else "")


def curves_table(curves: dict[str, dict[int, dict[int, float]]]) -> str:
    """Markdown table of learning curves (``curves.learning_curve``): one row per schedule,
    per curve the mIoU (mean ± sample std over seeds, the mean alone for one seed, in percent,
    and the seed count) and the gain over half the steps, paired by seed, with its 95%
    Student-t interval."""
    level = f"{100 * CONFIDENCE:.0f}%"
    summaries = {label: {row["steps"]: row for row in curve_summary(curve)}
                 for label, curve in curves.items()}
    steps = sorted({s for rows in summaries.values() for s in rows})
    header = ["steps"]
    for label in curves:
        header += [f"{label}: mIoU (%)", "seeds", f"gain over half the steps [{level} CI]"]
    rows = []
    for s in steps:
        cells = [s]
        for label in curves:
            row = summaries[label].get(s)
            if row is None:
                cells += ["", "", ""]
                continue
            gain = ("" if row["gain"] is None else f"{_pct(row['gain'], True)} "
                    f"[{_pct(row['ci'][0], True)}, {_pct(row['ci'][1], True)}]")
            cells += [_cell(row), row["n"], gain]
        rows.append(cells)
    return markdown_table(header, rows)


def _footing_rows(experiment: Experiment, scratch: dict | None, pretrained: dict | None,
                  metric: str) -> list[list[str]]:
    """The rows of ``footing_table``, one per ``pretrained`` comparison."""
    return [[f"{variant} vs {base}", _paper_cell(experiment, base, variant),
             *(_pair_reading(results, base, variant, metric)[0]
               for results in (scratch, pretrained))]
            for base, variant in experiment.pretrained]


def _paper_cell(experiment: Experiment, base: str, variant: str) -> str:
    paper = experiment.paper.get(variant)
    return f"{paper.value:+.1f}" if paper and paper.base == base else ""


def _pair_reading(results: dict | None, base: str, variant: str,
                  metric: str) -> tuple[str, str]:
    """One comparison on one footing: its ``footing_table`` cell (the gain paired by seed,
    its interval, the seed count and the verdict) and the verdict alone, ``"real gain"``,
    ``"real loss"``, ``"noise"`` or ``"not run"`` (no results, or the pair not run there)."""
    try:
        g = paired_gain(results, base, variant, metric)
    except (TypeError, ValueError):  # no results, or the pair not run there
        return "not run", "not run"
    verdict = ("real gain" if g["mean"] > 0 else "real loss") if g["real"] else "noise"
    mixed = (f" ({len(g['mixed_precision'])} of them of mixed precision)"
             if g["mixed_precision"] else "")
    return (f"{_pct(g['mean'], True)} [{_pct(g['ci'][0], True)}, {_pct(g['ci'][1], True)}], "
            f"{len(g['seeds'])} seeds{mixed}: {verdict}"), verdict


def _footing_header() -> list[str]:
    level = f"{100 * CONFIDENCE:.0f}%"
    return ["comparison", "paper", f"from scratch [{level} CI]", f"ImageNet encoder [{level} CI]"]


def footing_table(experiment: Experiment, scratch: dict | None, pretrained: dict | None,
                  metric: str = "miou") -> str:
    """Markdown table of an experiment's ``pretrained`` comparisons on both footings: the
    paper's gain where it reports one for that pair, then the gain paired by seed with its 95%
    interval, the seed count and the verdict, from scratch and on the ImageNet encoder; "not
    run" where a footing lacks the pair."""
    return markdown_table(_footing_header(), _footing_rows(experiment, scratch, pretrained,
                                                           metric))


def footings_overview(chapters, profile: str = "cpu", metric: str = "miou") -> str:
    """Every chapter's ``footing_table`` in one Markdown table (chapter 6's summary of the
    papers on both footings): a bold row names each chapter and experiment above its
    comparisons.

    Args:
        chapters: ``ablations.Chapter`` objects, e.g. ``ablations.CHAPTERS[:-1]``.

    Raises:
        ValueError: a corrupt results file.
    """
    rows = []
    for chapter in chapters:
        for experiment in chapter.experiments:
            scratch, pretrained, _ = load_footings(experiment.name, profile)
            rows.append([f"**chapter {chapter.number}: {experiment.name}**", "", "", ""])
            rows += _footing_rows(experiment, scratch, pretrained, metric)
    return markdown_table(_footing_header(), rows)


def footings_tally(chapters, profile: str = "cpu", metric: str = "miou") -> dict[str, str]:
    """How the chapters' ``pretrained`` comparisons (the rows of ``footings_overview``) read
    on each footing, as a phrase per footing for the prose: ``{"scratch": ..., "pretrained":
    ...}``, each e.g. ``"2 real gains, 1 real loss and 5 not distinguishable from zero (1 not
    run)"``; a verdict no comparison reached is left out.

    Raises:
        ValueError: a corrupt results file.
    """
    verdicts: dict[str, Counter] = {"scratch": Counter(), "pretrained": Counter()}
    for chapter in chapters:
        for experiment in chapter.experiments:
            scratch, pretrained, _ = load_footings(experiment.name, profile)
            for base, variant in experiment.pretrained:
                for footing, results in (("scratch", scratch), ("pretrained", pretrained)):
                    verdicts[footing][_pair_reading(results, base, variant, metric)[1]] += 1
    return {footing: _tally_text(counts) for footing, counts in verdicts.items()}


def _tally_text(counts: Counter) -> str:
    words = {"real gain": ("real gain", "real gains"), "real loss": ("real loss", "real losses"),
             "noise": ("not distinguishable from zero",) * 2}
    parts = [f"{counts[v]} {one if counts[v] == 1 else many}"
             for v, (one, many) in words.items() if counts[v]]
    if not parts:
        return f"none run yet ({counts['not run']} not run)"
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return text + (f" ({counts['not run']} not run)" if counts["not run"] else "")


def footing_reading(experiment: Experiment, profile: str = "cpu") -> tuple[str, str]:
    """What a chapter shows of its paper on both footings, from the stored results
    (``curves.load_footings``): the ``footing_table`` and a reading for the prose, one sentence
    per ``pretrained`` comparison with its gain on the ImageNet encoder and the verdict, e.g.
    ``"On the ImageNet encoder (3000 steps), DFN against baseline: +1.2 points (95% interval
    +0.3 to +2.1), which is a real gain."``.

    Raises:
        ValueError: a corrupt results file.
    """
    scratch, pretrained, steps = load_footings(experiment.name, profile)
    schedule = f"{steps} steps" if steps else "its reference schedule, not yet settled"
    sentences = []
    for base, variant in experiment.pretrained:
        verdict = gain_verdict(pretrained, base, variant)
        sentences.append(
            f"On the ImageNet encoder, {variant} against {base} is not run yet." if
            verdict.startswith("cannot") else
            f"On the ImageNet encoder ({schedule}), {variant} against {base}: "
            f"{gain_text(pretrained, base, variant)}, which {verdict}.")
    return footing_table(experiment, scratch, pretrained), " ".join(sentences)


def provenance_line(results: dict) -> str:
    """One sentence saying where the reference results come from: data, profile, steps,
    encoder, seeds, sizes, device, threads, torch, autocast precision (how many runs in each
    where they differ), commits, minutes of training and the command; for a file with runs
    borrowed from other experiments (``Experiment.borrowed``), how many and from which, whose
    own files hold their commits and times."""
    p = results["provenance"]
    seeds = ", ".join(map(str, p["seeds"]))
    train_h, train_w = results["train_size"]
    scored = " and ".join(f"{h} x {w}" for h, w in results.get("eval_size", [])) or "n/a"
    threads = ", ".join(map(str, p.get("threads", []))) or "?"
    # merged results hold every commit their runs were made at, comma-separated
    commits = ", ".join(f"`{c[:12]}`" + (" (with uncommitted library changes)"
                                         if "uncommitted" in c else "")
                        for c in provenance_commits(results))
    # runs copied from another experiment's results keep their commit and time there
    borrowed = [r["borrowed_from"].split(":")[0] for r in results["runs"] if "borrowed_from" in r]
    precisions = Counter(PRECISION_NAMES.get(run_precision(r), "an unrecorded precision")
                         for r in results["runs"])  # None: stored before runs recorded it
    autocast = ("" if not precisions else f"{next(iter(precisions))} throughout, "
                if len(precisions) == 1 else
                ", ".join(f"{n} run{'s' * (n != 1)} in {name}"
                          for name, n in precisions.most_common()) + ", ")
    runs = (f"{p['wall_seconds'] / 60:.0f} min of runs in all" if not borrowed else
            f"{p['wall_seconds'] / 60:.0f} min of its own runs in all, {len(borrowed)} of its "
            f"{len(results['runs'])} runs borrowed from the stored results of "
            f"{', '.join(dict.fromkeys(borrowed))}, where their commits and times are")
    config = with_defaults(results["profile_config"])  # the schedule and encoder of its runs
    return (f"Reference results: {results['data']}, profile `{results['profile']}`, "
            f"{config['steps']} steps on the `{config['encoder']}` encoder, seeds "
            f"{seeds}; trained at {train_h} x {train_w} pixels, validation labels scored at "
            f"{scored}; {p['device']}, {threads} thread(s) per run, torch {p['torch']}, "
            f"{autocast}commit(s) {commits}, {runs}; made by `{p['command']}`.")


def gain_text(results: dict | None, base: str, variant: str, metric: str = "miou") -> str:
    """A paired gain for the prose, e.g. ``"+1.2 points (95% interval +0.3 to +2.1)"``; says
    so when the results are missing, a variant was not run, or one seed gives no interval."""
    try:
        g = paired_gain(results, base, variant, metric)
    except (TypeError, ValueError):  # no results (yet): the prose stays renderable
        return "not available (the reference results are missing or incomplete)"
    return _gain_words(g["mean"], g["ci"])


def precision_text(first: dict | None, first_variant: str, second: dict | None,
                   second_variant: str, metric: str = "miou") -> str:
    """``stats.precision_effect`` for the prose: ``"float32 minus bfloat16 on the same model
    and seeds (0, 1, 2): -1.2 points (95% interval -2.0 to -0.4)"``, or ``"not measured
    yet"`` while either file is missing or no seed pairs two precisions.

    Raises:
        ValueError: as ``stats.precision_effect`` (not one model, a variant missing from its
            file, seeds pairing different couples of precisions).
    """
    e = (None if first is None or second is None else
         precision_effect(first, first_variant, second, second_variant, metric))
    if e is None:
        return "not measured yet"
    high, low = (PRECISION_NAMES[p] for p in e["precisions"])
    return (f"{high} minus {low} on the same model and seeds "
            f"({', '.join(map(str, e['seeds']))}): {_gain_words(e['mean'], e['ci'])}")


def gain_clause(results: dict | None, base: str, variant: str, metric: str = "miou") -> str:
    """``gain_text`` and ``gain_verdict`` as one clause for the prose, e.g. ``"+1.2 points (95%
    interval +0.3 to +2.1), which is a real gain"``, saying on how many seeds the two runs
    trained at different autocast precisions where any did (``paired_gain``); ``"not run
    yet"`` when the results lack either variant or a seed run for both."""
    try:
        g = paired_gain(results, base, variant, metric)
    except (TypeError, ValueError):  # no results (yet): the prose stays short and renderable
        return "not run yet"
    mixed = len(g["mixed_precision"])
    caveat = (f" (on {mixed} of its {len(g['seeds'])} seeds the two runs trained at different "
              f"autocast precisions)" if mixed else "")
    return (f"{gain_text(results, base, variant, metric)}, which "
            f"{gain_verdict(results, base, variant, metric)}{caveat}")


def _gain_words(mean: float, ci: tuple[float, float]) -> str:
    low, high = ci
    if not math.isfinite(low):
        return f"{_pct(mean, True)} points (one seed: no interval)"
    return (f"{_pct(mean, True)} points ({100 * CONFIDENCE:.0f}% interval "
            f"{_pct(low, True)} to {_pct(high, True)})")


def doubling_text(curve: dict[int, dict[int, float]], steps: int) -> str:
    """What training for ``steps`` instead of half as many adds on a learning curve
    (``curves.learning_curve``), paired by seed, for the prose: ``"+2.1 points (95% interval
    +0.9 to +3.3)"``, or ``"not measured yet"`` when either schedule has fewer than two seeds
    in common with the other."""
    row = next((r for r in curve_summary(curve) if r["steps"] == steps), None)
    if row is None or row["gain"] is None:
        return "not measured yet"
    return _gain_words(row["gain"], row["ci"])


def curve_mean_text(curve: dict[int, dict[int, float]], steps: int) -> str:
    """The mean over seeds of a learning curve (``curves.learning_curve``) at ``steps``, in
    percent for the prose (``"61.2%"``), or ``"not measured yet"``."""
    if steps not in curve:
        return "not measured yet"
    values = list(curve[steps].values())
    return f"{100 * sum(values) / len(values):.1f}%"


def schedule_sentence(curve: dict[int, dict[int, float]], short: int = 1500) -> str:
    """What a learning curve of the ImageNet encoder settles about the reference schedule, as
    a sentence for the prose (chapter 1): the schedule ``reference_schedule`` picks and how it
    compares with the ``short`` schedule of the from-scratch ladders, or that no measured
    doubling settles it yet."""
    schedule, limit = reference_schedule(curve), f"{100 * CONVERGED_GAIN:.1f} points"
    if schedule is None:
        return (f"No measured doubling adds at most {limit} yet, so the reference schedule of "
                f"the ImageNet encoder cannot be decided from these runs.")
    if schedule > short:
        return (f"So {short} steps leave even the pretrained encoder short of where its "
                f"training flattens, and the reference runs on it (each paper's comparisons on "
                f"the papers' footing) train for {schedule} steps: the shortest schedule "
                f"measured here whose doubling adds at most {limit}.")
    return (f"So {short} steps are long enough for the pretrained encoder (doubling them adds "
            f"at most {limit}), and its reference runs keep that schedule.")


def real_gains(results: dict | None, pairs, metric: str = "miou") -> str:
    """The comparisons of ``pairs`` ((base, variant) tuples) whose paired gain in ``metric`` is
    real (its 95% interval excludes zero), for the prose: ``"b vs a, c vs a (a loss)"`` (a
    real gain below zero is marked as a loss), ``"none"``, or ``"none (no reference results
    yet)"``; pairs without a seed run for both variants are left out."""
    if results is None:
        return "none (no reference results yet)"
    real = []
    for base, variant in pairs:
        if (shared_seeds(results, base, variant)
                and (g := paired_gain(results, base, variant, metric))["real"]):
            real.append(f"{variant} vs {base}" + (" (a loss)" if g["mean"] < 0 else ""))
    return ", ".join(real) or "none"


def unlearned_classes(results: dict | None, variants, below: float = 0.05) -> str:
    """The classes no model of ``variants`` learns, for the prose: those whose IoU, averaged
    over each model's stored runs, stays under ``below`` (a fraction) for every model that was
    run, each with the best model and its mean: ``"Pole (at most 1.4%, ExFuse)"``; ``"none"``;
    or ``"none (no reference results yet)"`` when no model of ``variants`` was run. A class
    absent from the validation labels in every run is not counted.

    Raises:
        KeyError: runs without per-class IoU (see ``per_class_values``).
    """
    if results is None:
        return "none (no reference results yet)"
    means = {}
    for variant in variants:
        per_run = [per_class_values(results, r) for r in results["runs"]
                   if r["variant"] == variant]                     # each (K,)
        if per_run:
            means[variant] = finite_mean(np.array(per_run))       # (runs, K) -> (K,)
    if not means:
        return "none (no reference results yet)"
    names, table = list(means), np.array(list(means.values()))    # (V, K)
    found = []
    for k, name in enumerate(results["classes"]):
        column = table[:, k]                                      # (V,)
        if np.isfinite(column).any() and np.nanmax(column) < below:
            best = int(np.nanargmax(column))
            found.append(f"{name} (at most {100 * column[best]:.1f}%, {names[best]})")
    return _and_list(found) if found else "none"


def gain_verdict(results: dict | None, base: str, variant: str, metric: str = "miou") -> str:
    """What the paired gain of ``variant`` over ``base`` says, as a predicate for the prose:
    ``"is a real gain"`` or ``"is a real loss"`` (its 95% interval excludes zero),
    ``"is not distinguishable from zero"``, ``"cannot be told from zero with one seed"``, or
    ``"cannot be read yet (...)"`` when the results are missing or the two variants share no
    seed."""
    try:
        g = paired_gain(results, base, variant, metric)
    except (TypeError, ValueError):  # no results (yet): the prose stays renderable
        return "cannot be read yet (the reference results are missing or incomplete)"
    if not math.isfinite(g["ci"][0]):
        return "cannot be told from zero with one seed"
    if not g["real"]:
        return "is not distinguishable from zero"
    return "is a real gain" if g["mean"] > 0 else "is a real loss"
