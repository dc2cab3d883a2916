"""``brightkitchen train``: synthetic data, training, evaluation and ONNX export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from edge_agent.config import EdgeConfig

app = typer.Typer(help="Synthetic data, training, evaluation and ONNX export.", no_args_is_help=True)


# --- synthetic data ---------------------------------------------------------------------------------------


@app.command("synth")
def synth_cmd(
    out: Annotated[Path, typer.Option(help="Dataset folder (YOLO layout, data.yaml, preview, manifest).")],
    images: Annotated[int, typer.Option(min=1, help="Number of stills.")] = 2000,
    seed: Annotated[int, typer.Option(help="Dataset seed; image i depends only on (seed, i).")] = 0,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.9, help="Share of images in val.")] = 0.1,
    width: Annotated[int, typer.Option(min=64)] = 640,
    height: Annotated[int, typer.Option(min=64)] = 360,
    source: Annotated[
        str,
        typer.Option(
            help="scene: random counter scenes; clip: frames of scripted clips (hands placing food, "
            "containers being stacked), mostly just after a hand reached its spot; hands: only clip frames "
            "where a hand covers food on a board (just put down, or chopping beside it)."
        ),
    ] = "scene",
) -> None:
    """Render procedural kitchen stills with exact labels (boards by colour, food by category, containers)."""
    from training.synth.stills import SOURCES, write_dataset

    if source not in SOURCES:
        raise typer.BadParameter(f"expected one of {', '.join(SOURCES)}", param_hint="--source")
    manifest = write_dataset(out, images, seed, val_fraction, width, height, source=source)
    counts = ", ".join(f"{k} {v}" for k, v in manifest["instances"].items())
    typer.echo(f"{out}: {images} images ({manifest['val']} val); instances: {counts}")
    typer.echo(f"preview: {out / 'preview.png'}")


@app.command("synth-clips")
def synth_clips_cmd(
    out: Annotated[
        Path, typer.Option(help="Folder for the MP4 clips, their ground-truth JSON and index.json.")
    ],
    count: Annotated[int, typer.Option(min=1, help="Number of clips.")] = 8,
    seed: Annotated[int, typer.Option(help="Clip set seed; clip i depends only on (seed, i).")] = 0,
    fps: Annotated[float, typer.Option(min=10, max=15, help="Frames per second.")] = 12.0,
    clean_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share without violations.")] = 0.25,
) -> None:
    """Render scripted clips (H.264 MP4, 640x360, 10-40 s) with a ground-truth event timeline each."""
    from training.synth.clips import write_clips

    infos = write_clips(out, count, seed, fps, clean_fraction)
    events = sum(len(c.events) for c in infos)
    typer.echo(
        f"{out}: {count} clips, {sum(c.duration_s for c in infos):.0f} s, {events} ground-truth events"
    )


# --- training, export, evaluation -------------------------------------------------------------------------

EDGE_CONFIG_OPTION = typer.Option(
    help="Edge config (YAML) whose first camera's rules, fps, palette, tracking and motion gate replay the "
    "clips; default: `edge replay`'s (both rules at their defaults, 5 fps)."
)
THREADS_OPTION = typer.Option(
    min=1,
    help="ONNX Runtime threads for the still images; clips replay with the edge config's `model.threads` "
    "(default 2), as the edge box would.",
)


def _edge_config(path: Path | None) -> EdgeConfig | None:
    """The edge config at ``path``, validated (a wrong key is named with the file), or None."""
    if path is None:
        return None
    from brightkitchen.config import ConfigError
    from edge_agent.config import load_edge_config

    try:
        return load_edge_config(path)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--edge-config") from exc


def _train_arguments(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs from ``--set`` as Ultralytics train arguments, values read as YAML."""
    import yaml

    extra = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        extra[key.strip()] = yaml.safe_load(value)
    return extra


@app.command("fit")
def fit_cmd(
    data: Annotated[
        list[Path],
        typer.Option(
            help="YOLO dataset folder (with data.yaml) from `train synth`; repeat to merge several."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Run folder: weights, train.log, results.png (curves), fit.json.")
    ],
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    hours: Annotated[
        float | None,
        typer.Option(
            help="Time budget in hours; overrides --epochs, re-planning epochs and LR schedule to fit."
        ),
    ] = None,
    imgsz: Annotated[int, typer.Option(help="Square training size in pixels (multiple of 32).")] = 320,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    weights: Annotated[
        Path | None, typer.Option(help="Start from these .pt weights instead of from scratch.")
    ] = None,
    arch: Annotated[
        str, typer.Option(help="Ultralytics model YAML for from-scratch training.")
    ] = "yolo11n.yaml",
    resume: Annotated[bool, typer.Option(help="Continue the interrupted run in --out from last.pt.")] = False,
    workers: Annotated[int, typer.Option(min=0, help="Data-loader processes.")] = 2,
    threads: Annotated[int | None, typer.Option(help="Torch threads (default: all cores).")] = None,
    seed: int = 0,
    device: Annotated[str, typer.Option(help="cpu, or a CUDA device index such as 0.")] = "cpu",
    real: Annotated[
        list[Path] | None,
        typer.Option(
            help="Real dataset folder (dashboard export-dataset or import-labels); repeat for more."
        ),
    ] = None,
    real_ratio: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of real images among training images (the scarcer side is repeated); "
            "default: every image once.",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Any other Ultralytics train argument as KEY=VALUE (YAML value), e.g. --set nbs=32 "
            "--set close_mosaic=4; repeat for more.",
        ),
    ] = None,
) -> None:
    """Train the detector with Ultralytics, fully offline, with progress, a log and training curves.

    With --real, trains on synthetic and real data together (the mix is written to OUT/mix/)."""
    from training.fit import FitOptions, fit

    best = fit(
        FitOptions(
            data=data[0] if len(data) == 1 else data,
            out=out,
            epochs=epochs,
            hours=hours,
            imgsz=imgsz,
            batch=batch,
            weights=weights,
            arch=arch,
            resume=resume,
            workers=workers,
            threads=threads,
            seed=seed,
            device=device,
            real=real or [],
            real_ratio=real_ratio,
            extra=_train_arguments(option or []),
        )
    )
    typer.echo(f"best weights: {best}\ncurves: {out / 'results.png'}\nlog: {out / 'train.log'}")


@app.command("weights-from-onnx")
def weights_from_onnx_cmd(
    model: Annotated[Path, typer.Option(help="Model folder (models/<name>-<version>) to start from.")],
    calibration: Annotated[
        Path, typer.Option(help="Training images for the BatchNorm statistics (a `train synth` folder).")
    ],
    out: Annotated[Path, typer.Option(help="Ultralytics .pt to write, for `train fit --weights`.")],
    arch: Annotated[str, typer.Option(help="Ultralytics model YAML it was trained as.")] = "yolo11n.yaml",
    images: Annotated[int, typer.Option(min=1, help="Calibration images to use.")] = 48,
) -> None:
    """Rebuild trainable weights from a model folder's ONNX file, to fine-tune a model whose .pt is gone.

    Export folds each BatchNorm into its convolution; this unfolds them with statistics measured on the
    calibration images, and checks that the result reproduces the ONNX model before writing it."""
    from edge_agent.detector import ModelLoadError
    from training.unfuse import weights_from_onnx

    try:
        check = weights_from_onnx(model, calibration, out, arch, images)
    except (ValueError, FileNotFoundError, ModelLoadError) as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(
        f"{out}: reproduces {model / 'model.onnx'} on {check.images} images to "
        f"{check.max_probability_error:.1e} in class scores, {check.max_box_error_px:.4f} px in boxes"
    )


@app.command("export")
def export_cmd(
    weights: Annotated[Path, typer.Option(help="Trained .pt weights (runs/<run>/weights/best.pt).")],
    out: Annotated[Path, typer.Option(help="Model folder to create, e.g. models/bk-detector-1.0.0.")],
    name: Annotated[str, typer.Option(help="Model name for the card.")] = "bk-detector",
    version: Annotated[str, typer.Option(help="Model version for the card.")] = "0.0.0",
    width: Annotated[int, typer.Option(help="Static ONNX input width (multiple of 32).")] = 320,
    height: Annotated[int, typer.Option(help="Static ONNX input height (multiple of 32).")] = 192,
) -> None:
    """Export weights to ONNX (opset 18, static input, fp32) as a model folder with labels and a card."""
    import json

    from training.export import export_onnx, write_model_folder

    if width % 32 or height % 32:
        raise typer.BadParameter("width and height must be multiples of 32")
    onnx_path = export_onnx(weights, width, height)
    fit_json = weights.parent.parent / "fit.json"
    training = {}
    if fit_json.exists():
        fit_info = json.loads(fit_json.read_text())
        opts = fit_info["options"]
        results_csv = weights.parent.parent / "results.csv"
        epochs_run = len(results_csv.read_text().splitlines()) - 1 if results_csv.exists() else None
        training = {
            **{k: opts.get(k) for k in ("imgsz", "batch", "arch", "weights", "hours")},
            # epochs actually run (a --hours budget re-plans them), one results.csv row each
            "epochs": epochs_run or opts["epochs"],
            "train_arguments": opts.get("extra") or {},
            "train_seconds": fit_info.get("train_seconds"),
            "machine": fit_info.get("machine"),
        }
        if "dataset" in fit_info:
            ds = fit_info["dataset"]
            training["dataset"] = {
                "count": ds.get("count"),
                "seeds": ds.get("seeds") or [ds.get("seed")],
                "fingerprint": ds.get("fingerprint"),
                "generator": ds.get("generator_version"),
            }
            if ds.get("real", {}).get("used"):
                training["dataset"]["real"] = ds["real"] | {"ratio": ds.get("real_ratio")}
    card = write_model_folder(onnx_path, out, name, version, width, height, training)
    typer.echo(
        f"{out}: {card.size_bytes / 1e6:.1f} MB, sha256 {card.sha256[:16]}…, latency {card.latency_ms}"
    )


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Option(help="Model folder (models/<name>-<version>).")],
    data: Annotated[
        Path | None,
        typer.Option(help="Held-out YOLO dataset rendered from a seed never used in training."),
    ] = None,
    clips: Annotated[
        Path | None, typer.Option(help="Folder of clips with ground-truth JSON for event metrics.")
    ] = None,
    edge_config: Annotated[Path | None, EDGE_CONFIG_OPTION] = None,
    split: Annotated[str, typer.Option(help="Dataset split to use; 'all' for every image.")] = "all",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
    update_card: Annotated[bool, typer.Option(help="Store the metrics in the model's card.")] = False,
    threads: Annotated[int, THREADS_OPTION] = 2,
) -> None:
    """With --data, mAP50 / mAP50-95 per class through ONNX Runtime; with --clips, events replayed through
    the edge pipeline: found, false alerts, late (later than the rule's T + 1 s), precision, recall, on-time
    recall, and the clips behind every miss, false alert and late alarm. Give either or both."""
    import json

    from edge_agent.detector import Detector
    from training.evaluate import (
        PROTOCOL,
        data_seed,
        dataset_classes,
        dataset_images,
        evaluate_detections,
        format_table,
        training_seeds,
    )

    if data is None and clips is None:
        raise typer.BadParameter("give --data (detection metrics), --clips (event metrics) or both")
    if update_card and data is None:
        raise typer.BadParameter("the card stores the held-out mAP: give --data", param_hint="--update-card")
    config = _edge_config(edge_config)
    result: dict = {"model": str(model)}
    if data is not None:
        seed = data_seed(data)
        if seed is not None and seed in training_seeds(model):
            raise typer.BadParameter(
                f"{data} was rendered with seed {seed}, which {model} was trained on", param_hint="--data"
            )
        images = dataset_images(data, split)
        if not images:
            raise typer.BadParameter(f"no images under {data}/images", param_hint="--data")
        detector = Detector.load(model, threads=threads)
        rows = evaluate_detections(detector, images, classes=dataset_classes(data))
        typer.echo(format_table(rows))
        result |= {
            "data": str(data),
            "data_seed": seed,
            "images": len(images),
            "protocol": PROTOCOL,
            "per_class": [r.__dict__ for r in rows],
        }
    if clips is not None:
        from training.event_eval import evaluate_clips, format_event_summary

        result["events"] = evaluate_clips(model, clips, config)
        typer.echo(format_event_summary(result["events"]))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    if update_card:
        from brightkitchen.model_card import ModelCard
        from training.export import write_card

        card = ModelCard.read(model)
        card.metrics = {k: v for k, v in result.items() if k not in ("model", "data")}
        write_card(model, card)


@app.command("compare")
def compare_cmd(
    candidate: Annotated[Path, typer.Option(help="Candidate model folder.")],
    baseline: Annotated[Path, typer.Option(help="Baseline model folder (the one in production).")],
    data: Annotated[Path, typer.Option(help="Fixed benchmark: a YOLO dataset neither model trained on.")],
    out: Annotated[Path, typer.Option(help="Report folder: report.md, report.json, chart.png.")],
    clips: Annotated[
        Path | None,
        typer.Option(
            help="Clips with ground-truth JSON: also compare event precision, recall, on-time recall."
        ),
    ] = None,
    edge_config: Annotated[Path | None, EDGE_CONFIG_OPTION] = None,
    tolerance: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Largest allowed drop per class and metric (absolute).")
    ] = 0.02,
    threads: Annotated[int, THREADS_OPTION] = 2,
) -> None:
    """Evaluate both models on the same benchmark; exit 0 to promote the candidate, 1 to reject it."""
    from training.compare import evaluate_model, judge, write_report
    from training.evaluate import data_seed, training_seeds

    seed = data_seed(data)
    for model in (candidate, baseline):
        if not (model / "card.json").exists():
            raise typer.BadParameter(f"{model} is not a model folder (no card.json)")
        if seed is not None and seed in training_seeds(model):
            raise typer.BadParameter(
                f"{data} was rendered with seed {seed}, which {model} was trained on", param_hint="--data"
            )
    config = _edge_config(edge_config)
    results = [evaluate_model(m, data, clips, threads, config) for m in (candidate, baseline)]
    verdict = judge(*results, tolerance)
    write_report(out, *results, verdict, tolerance, data, clips)
    typer.echo(f"{'PROMOTE' if verdict.promote else 'REJECT'}: report {out / 'report.md'}")
    for reason in verdict.reasons:
        typer.echo(f"  {reason}")
    raise typer.Exit(0 if verdict.promote else 1)


# --- food classifier -------------------------------------------------------------------------------------


def _check_food_datasets(datasets: list[Path], hint: str) -> None:
    """Each dataset must have a data.yaml and food boxes; a clear error naming the option otherwise."""
    from training.food_classifier import check_dataset

    for dataset in datasets:
        try:
            check_dataset(dataset)
        except (FileNotFoundError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint=hint) from None


@app.command("food-classifier")
def food_classifier_cmd(
    data: Annotated[
        list[Path],
        typer.Option(help="YOLO dataset (data.yaml) whose true food boxes are the training crops; repeat."),
    ],
    val: Annotated[
        list[Path],
        typer.Option(
            help="YOLO dataset for validation, rendered from seeds not in --data: picks the best epoch and "
            "measures the accuracy; repeat."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Run folder to create: crops/, weights/, train.log, food_classifier.onnx and "
            "food_classifier.json (what attach-classifier puts on the card)."
        ),
    ],
    epochs: Annotated[int, typer.Option(min=1)] = 25,
    imgsz: Annotated[int, typer.Option(min=16, help="Square input of the classifier, pixels.")] = 96,
    batch: Annotated[int, typer.Option(min=1)] = 64,
    weights: Annotated[
        Path | None, typer.Option(help="Start from these classifier .pt weights instead of from scratch.")
    ] = None,
    context: Annotated[
        float, typer.Option(min=1.0, help="Crop the box grown by this around its centre, as the edge will.")
    ] = 1.2,
    workers: Annotated[int, typer.Option(min=0, help="Data-loader processes.")] = 2,
) -> None:
    """Train the food classifier (a model folder's optional second stage) on crops of true food boxes.

    The detector judges a small piece of food with the scene around it; the classifier sees the food alone.

    At the edge it re-reads a food box's category where it is sure; crops are cut as the edge cuts them.

    Prints the val accuracy of the exported ONNX, run as the edge runs it, and the path of the ONNX file.

    Example:
    brightkitchen train food-classifier --data data/synth-a --data data/synth-b \\
      --val data/synth-c --out runs/fc-1
    """
    from training.food_classifier import train_food_classifier

    if out.exists():
        raise typer.BadParameter(f"{out} already exists: choose a new run folder", param_hint="--out")
    _check_food_datasets(data, "--data")
    _check_food_datasets(val, "--val")
    if weights is not None and not weights.is_file():
        raise typer.BadParameter(f"{weights} does not exist", param_hint="--weights")
    result = train_food_classifier(data, val, out, epochs, imgsz, batch, weights, context, workers)
    crops = ", ".join(f"{k} {v}" for k, v in result.crops["train"].items())
    typer.echo(f"train crops: {crops}")
    typer.echo(
        f"val top-1 {result.val_top1:.3f} on {sum(result.crops['val'].values())} crops "
        f"(through ONNX, as the edge reads them); epochs run: {result.epochs}"
    )
    typer.echo(f"classifier: {result.onnx}")


@app.command("attach-classifier")
def attach_classifier_cmd(
    model: Annotated[Path, typer.Option(help="Model folder to start from (models/<name>-<version>).")],
    classifier: Annotated[Path, typer.Option(help="Run folder of `train food-classifier`.")],
    out: Annotated[Path, typer.Option(help="Model folder to create, e.g. models/bk-detector-0.6.1.")],
    version: Annotated[str, typer.Option(help="Version on the new folder's card.")],
) -> None:
    """Make a new model folder: a copy of --model with the classifier as its food_classifier.onnx.

    model.onnx and its sha256 stay; the card gets the classifier, a new version and date; README.md too.

    The new folder is loaded once as the edge loads it; it is removed again if that fails.

    Example:
    brightkitchen train attach-classifier --model models/bk-detector-0.6.0 \\
      --classifier runs/fc-1 --out models/bk-detector-0.6.1 --version 0.6.1
    """
    from brightkitchen.model_card import CARD_FILE
    from edge_agent.detector import ModelLoadError
    from training.export import food_classifier_line
    from training.food_classifier import attach_food_classifier

    if out.exists():
        raise typer.BadParameter(f"{out} already exists: choose a new model folder", param_hint="--out")
    if not (model / CARD_FILE).exists():
        raise typer.BadParameter(f"{model} is not a model folder (no {CARD_FILE})", param_hint="--model")
    try:
        card = attach_food_classifier(model, classifier, out, version)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--classifier") from None
    except ModelLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    assert card.food_classifier is not None
    typer.echo(f"{out}: {card.ref}, {food_classifier_line(card.food_classifier)}")


@app.command("eval-food")
def eval_food_cmd(
    model: Annotated[Path, typer.Option(help="Model folder with a food classifier (attach-classifier).")],
    data: Annotated[
        Path, typer.Option(help="Held-out YOLO dataset: a seed neither the detector nor classifier saw.")
    ],
    sure: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="The classifier's category replaces the detector's where its probability is at least this "
            "(the edge's model.food_classifier_at; default: the edge's default).",
        ),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON here.")] = None,
) -> None:
    """Food categories of a dataset's true food boxes as read by the detector, the classifier and both.

    Each true box is matched to the detector's best food box (IoU >= 0.5 at confidence 0.25).

    Prints each reading's accuracy on the boxes the detector found, and one confusion table per reading.

    Also how many boxes the combination re-read, fixed and broke: to judge a classifier and a --sure.

    Example:
    brightkitchen train eval-food --model models/bk-detector-0.6.1 \\
      --data data/synth-9001
    """
    import json

    from brightkitchen.model_card import ModelCard
    from training.evaluate import data_seed, training_seeds
    from training.food_classifier import classifier_seeds, evaluate_food_classifier, format_food_eval

    try:
        card = ModelCard.read(model)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{model}: {exc}", param_hint="--model") from None
    if card.food_classifier is None:
        raise typer.BadParameter(
            f"{model} has no food classifier (card.food_classifier)", param_hint="--model"
        )
    _check_food_datasets([data], "--data")
    seed = data_seed(data)
    if seed is not None and seed in training_seeds(model) | classifier_seeds(card):
        raise typer.BadParameter(
            f"{data} was rendered with seed {seed}, on which {model}'s detector or food classifier was "
            "trained or validated",
            param_hint="--data",
        )
    result = evaluate_food_classifier(model, data, *([] if sure is None else [sure]))
    typer.echo(format_food_eval(result))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


# --- real data ---------------------------------------------------------------------------------------------


@app.command("import-labels")
def import_labels_cmd(
    fmt: Annotated[str, typer.Option("--format", help="yolo or coco (as exported by CVAT or Label Studio).")],
    src: Annotated[Path, typer.Option(help="The tool's export: a folder, or a COCO JSON file.")],
    out: Annotated[Path, typer.Option(help="Dataset folder to write (our YOLO layout, data.yaml).")],
    splits: Annotated[
        Path | None,
        typer.Option(help="datasheet.json of the dashboard export the labels came from: keeps its split."),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Share in val for images whose split is not known.")
    ] = 0.2,
) -> None:
    """Bring corrected labels (YOLO or COCO) back into a dataset folder that `train fit` reads."""
    from training.import_labels import import_labels

    if fmt not in ("yolo", "coco"):
        raise typer.BadParameter("expected yolo or coco", param_hint="--format")
    try:
        summary = import_labels(fmt, src, out, splits, val_fraction)  # type: ignore[arg-type]
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    im = summary["images"]
    boxes = ", ".join(f"{k} {v}" for k, v in summary["per_class"].items() if v) or "none"
    typer.echo(f"{out}: {im['train']} train + {im['val']} val images; boxes: {boxes}")
