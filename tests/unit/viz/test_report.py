"""The HTML report and the metrics files: parsed back with the standard library and Pillow, checked against
the inputs (table rows and numbers, worst cases chosen by sorting here, embedded PNGs, no external reference)."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from ssmad.errors import InputError
from ssmad.viz import OutputExistsError, format_percent, metric_columns, overlay, write_metrics_files, write_report
from ssmad.viz.report import select_cases

CATEGORIES = ("bottle", "wood")
NAN = float("nan")
DATA_PREFIX = "data:image/png;base64,"


class ReportParser(HTMLParser):
    """Collects images (with the id of the enclosing element), table rows, links and the tags used."""

    VOID = frozenset({"img", "meta", "br", "hr", "link", "input", "source"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.images: list[dict[str, str]] = []
        self.tags: set[str] = set()
        self.refs: list[str] = []
        self.rows: list[list[str]] = []
        self.header: list[str] = []
        self.captions: list[tuple[str | None, str]] = []
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None

    def _container_id(self) -> str | None:
        return next((a.get("id") for t, a in reversed(self.stack) if t == "div" and a.get("id")), None)

    def _inside(self, tag: str) -> bool:
        return any(t == tag for t, _ in self.stack)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        for key in ("src", "href", "action", "data", "poster"):
            if key in a:
                self.refs.append(a[key])
        if tag == "img":
            self.images.append({**a, "container": self._container_id() or "", "figure": str(self._inside("figure"))})
        if tag == "tr" and self._inside("tbody"):
            self.rows.append([])
        if tag in ("td", "th") and self._inside("table"):
            self._cell = []
        if tag == "figcaption":
            self._caption = []
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            if self._inside("tbody"):
                self.rows[-1].append(text)
            elif self._inside("thead"):
                self.header.append(text)
            self._cell = None
        if tag == "figcaption" and self._caption is not None:
            self.captions.append((self._container_id(), "".join(self._caption)))
            self._caption = None
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)


def parse(path) -> tuple[ReportParser, str]:
    text = path.read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(text)
    parser.close()
    return parser, text


def decode_png(src: str) -> Image.Image:
    assert src.startswith(DATA_PREFIX), src[:60]
    raw = base64.b64decode(src[len(DATA_PREFIX) :], validate=True)
    Image.open(io.BytesIO(raw)).verify()
    img = Image.open(io.BytesIO(raw))
    assert img.format == "PNG"
    img.load()
    return img


def make_metrics() -> dict:
    per = {
        "bottle": {"image_AUROC": 0.98765, "image_AP": 1.0, "pixel_AUROC": 0.9, "pixel_AUPRO": NAN, "mAD": 0.5},
        "wood": {"image_AUROC": 0.5, "image_AP": 0.04449, "pixel_AUROC": NAN, "pixel_AUPRO": 0.7, "mAD": 0.25},
    }
    return {
        "image_AUROC": 0.743825,
        "image_AP": 0.522245,
        "pixel_AUROC": NAN,
        "pixel_AUPRO": NAN,
        "mAD": 0.375,
        "per_category": per,
        "definition": "exact",
        "metrics_version": "1.0",
    }


def make_predictions(n_per_category: int = 8, size: tuple[int, int] = (20, 28)) -> list[dict]:
    rng = np.random.default_rng(7)
    h, w = size
    records = []
    for cat in CATEGORIES:
        for i in range(n_per_category):
            label = int(i % 2)
            amap = rng.random((h // 2, w // 2)) * 0.5
            mask = np.zeros((h, w), bool)
            if label:
                mask[4:10, 6:14] = True
                amap[2:5, 3:7] += 1.0
            records.append(
                {
                    "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                    "image_path": f"/data/{cat}/test/{'bad' if label else 'good'}/{i:03d}.png",
                    "category": cat,
                    "label": label,
                    "score": float(rng.random()),
                    "anomaly_map": amap,
                    "gt_mask": mask,
                }
            )
    return records


def name_of(rec: dict) -> str:
    return "/".join(rec["image_path"].split("/")[-3:])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    preds = make_predictions()
    path = write_report(out, make_metrics(), preds, title="Test run", info={"model": "mambaad"}, threshold=0.9)
    parser, text = parse(path)
    return path, parser, text, preds


def test_every_image_is_an_embedded_valid_png(report):
    _, parser, _, _ = report
    assert len(parser.images) > 0
    for img in parser.images:
        decoded = decode_png(img["src"])
        if "width" in img:
            assert decoded.size == (int(img["width"]), int(img["height"]))


def test_no_external_reference_script_or_stylesheet_link(report):
    _, parser, text, _ = report
    assert not parser.tags & {"script", "link", "iframe", "object", "embed"}
    for ref in parser.refs:
        assert ref.startswith(DATA_PREFIX) or ref.startswith("#"), ref[:80]
    assert not re.search(r"https?://|url\(|@import", text)


def test_table_has_one_row_per_category_plus_mean_with_the_given_numbers(report):
    _, parser, _, _ = report
    metrics = make_metrics()
    columns = ["image_AUROC", "image_AP", "pixel_AUROC", "pixel_AUPRO", "mAD"]  # frozen order, those present
    assert parser.header == ["category"] + [c.replace("_", " ") for c in columns]
    assert [r[0] for r in parser.rows] == [*CATEGORIES, "mean"]
    for row in parser.rows:
        source = metrics if row[0] == "mean" else metrics["per_category"][row[0]]
        for col, cell in zip(columns, row[1:], strict=True):
            value = source[col]
            if math.isnan(value):
                assert cell == "–"
            else:
                assert re.fullmatch(r"\d+\.\d", cell), cell  # one decimal
                assert abs(float(cell) - 100 * value) <= 0.05 + 1e-9


def test_definition_version_and_info_are_shown(report):
    _, _, text, _ = report
    for needle in ("exact", "1.0", "mambaad", "Test run"):
        assert needle in text


def _figures_in(parser: ReportParser, suffix: str, cat_index: int, cat: str) -> list[str]:
    cid = f"cat{cat_index}-{cat}-{suffix}"
    return [img["alt"] for img in parser.images if img["container"] == cid]


def test_worst_false_positives_and_negatives_per_category(report):
    _, parser, _, preds = report
    for i, cat in enumerate(CATEGORIES):
        mine = [r for r in preds if r["category"] == cat]
        normal = sorted((r for r in mine if r["label"] == 0), key=lambda r: -r["score"])
        anomalous = sorted((r for r in mine if r["label"] == 1), key=lambda r: r["score"])
        assert _figures_in(parser, "fp", i, cat) == [name_of(r) for r in normal[:3]]
        assert _figures_in(parser, "fn", i, cat) == [name_of(r) for r in anomalous[:3]]
        gallery = _figures_in(parser, "gallery", i, cat)
        assert 0 < len(gallery) <= 4
        assert not set(gallery) & set(_figures_in(parser, "fp", i, cat) + _figures_in(parser, "fn", i, cat))


def test_captions_carry_score_and_label(report):
    _, parser, _, preds = report
    by_name = {(r["category"], name_of(r)): r for r in preds}
    assert len(parser.captions) == len(parser.images) - 1 - len(CATEGORIES)  # all but the ROC plot and scale bars
    for container, caption in parser.captions:
        category = re.fullmatch(r"cat\d+-(\w+)-(fp|fn|gallery)", container).group(1)
        name, score, label = caption.split(" · ")
        rec = by_name[(category, name)]
        assert float(score.removeprefix("score ")) == pytest.approx(rec["score"], rel=1e-3)
        assert label == ("anomalous" if rec["label"] else "normal")


def test_thumbnail_shows_the_overlay_of_the_record(tmp_path):
    preds = make_predictions(n_per_category=2)[:2]
    path = write_report(tmp_path, make_metrics(), preds, compact=False, thumb_size=40, normalization=(0.0, 1.5))
    parser, _ = parse(path)
    figs = [img for img in parser.images if img["figure"] == "True"]
    assert len(figs) == 2
    for img in figs:
        rec = next(r for r in preds if name_of(r) == img["alt"])
        expected = overlay(rec["image"], rec["anomaly_map"], rec["gt_mask"], value_range=(0.0, 1.5), size=(40, 56))
        np.testing.assert_array_equal(np.asarray(decode_png(img["src"]).convert("RGB")), expected)


def test_normal_images_without_mask_get_an_empty_ground_truth_column(tmp_path):
    preds = make_predictions(n_per_category=2)[:2]  # one normal, one anomalous
    preds[0]["gt_mask"] = None
    lonely = {**preds[0], "category": "no_masks_here"}  # a category without any mask: no ground-truth column
    path = write_report(tmp_path, {}, [*preds, lonely], compact=False, thumb_size=40, normalization=(0.0, 1.5))
    parser, _ = parse(path)
    figs = {img["container"]: img for img in parser.images if img["figure"] == "True"}
    normal = decode_png(figs["cat0-bottle-fp"]["src"])
    anomalous = decode_png(figs["cat0-bottle-fn"]["src"])
    assert normal.size == anomalous.size == (3 * 56 + 2 * 4, 40)  # image | ground truth | anomaly map
    gt_col = np.asarray(normal.convert("RGB"))[:, 60:116]
    assert (gt_col == 0).all()
    assert decode_png(figs["cat1-no_masks_here-fp"]["src"]).size == (2 * 56 + 4, 40)


def test_existing_report_is_kept_unless_overwrite(report, tmp_path):
    path = write_report(tmp_path, make_metrics(), [])
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write_report(tmp_path, {"image_AUROC": 0.1}, [])
    assert path.read_bytes() == before
    write_report(tmp_path, {"image_AUROC": 0.1}, [], overwrite=True)
    parser, _ = parse(path)
    assert parser.rows == [["mean", "10.0"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_max_images_bounds_the_number_of_pictures(tmp_path):
    path = write_report(tmp_path, make_metrics(), make_predictions(), max_images=3)
    parser, text = parse(path)
    assert sum(img["figure"] == "True" for img in parser.images) == 3
    assert "not shown" in text
    # Worst cases come first: the 3 pictures are false positives/negatives, not gallery pictures.
    assert all(not img["container"].endswith("gallery") for img in parser.images if img["figure"] == "True")


def test_file_size_is_bounded_for_large_images(tmp_path):
    preds = make_predictions(n_per_category=10, size=(512, 512))
    path = write_report(tmp_path, make_metrics(), preds, thumb_size=96)
    parser, _ = parse(path)
    n = sum(img["figure"] == "True" for img in parser.images)
    assert n == 2 * (3 + 3 + 4)
    for img in parser.images:
        if img["figure"] == "True":
            assert decode_png(img["src"]).height == 96
    assert path.stat().st_size < 60_000 * n  # thumbnails, not full-size pictures


def test_ready_made_overlay_files_and_object_records(tmp_path):
    src = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    Image.fromarray(src).save(tmp_path / "ov.png")
    records = [
        SimpleNamespace(
            image_path="x/good/0.png", category="c", gt_label=0, pred_score=0.3, overlay=tmp_path / "ov.png"
        ),
        SimpleNamespace(image_path="x/bad/1.png", category="c", gt_label=1, pred_score=0.9, overlay=src),
    ]
    path = write_report(tmp_path / "out", {"per_category": {"c": {"image_AUROC": 1.0}}}, records, thumb_size=30)
    parser, _ = parse(path)
    figs = [img for img in parser.images if img["figure"] == "True"]
    assert sorted(img["alt"] for img in figs) == ["x/bad/1.png", "x/good/0.png"]
    expected = np.asarray(Image.fromarray(src).resize((45, 30), Image.Resampling.LANCZOS)).astype(int)
    for img in figs:
        got = np.asarray(decode_png(img["src"]).convert("RGB")).astype(int)
        assert got.shape == (30, 45, 3)
        assert np.abs(got - expected).mean() < 12  # palette quantisation only


def test_missing_image_file_still_shows_the_map(tmp_path, caplog):
    rec = {"image_path": str(tmp_path / "gone.png"), "category": "c", "label": 1, "score": 0.5}
    rec["anomaly_map"] = np.random.default_rng(0).random((16, 16))
    path = write_report(tmp_path, {}, [rec], thumb_size=16)
    parser, _ = parse(path)
    figs = [img for img in parser.images if img["figure"] == "True"]
    assert len(figs) == 1 and decode_png(figs[0]["src"]).size == (16, 16)  # the map column alone
    assert "gone.png" in caplog.text


def test_unlabelled_predictions_have_only_a_gallery(tmp_path):
    preds = [{**r, "label": None} for r in make_predictions(n_per_category=3)]
    parser, _ = parse(write_report(tmp_path, {}, preds))
    containers = {img["container"] for img in parser.images if img["figure"] == "True"}
    assert containers and all(c.endswith("-gallery") for c in containers)


def test_bad_scores_and_options_raise(tmp_path):
    rec = {"category": "c", "label": 0, "score": NAN}
    with pytest.raises(InputError, match="score"):
        write_report(tmp_path, {}, [rec])
    with pytest.raises(InputError):
        write_report(tmp_path, {}, [], normalization="loud")
    with pytest.raises(InputError):
        write_report(tmp_path, {"per_category": [1, 2]}, [])
    assert not (tmp_path / "report.html").exists()


def test_select_cases_against_sorting():
    rng = np.random.default_rng(3)
    items = [SimpleNamespace(index=i, label=int(rng.integers(0, 2)), score=float(rng.random())) for i in range(30)]
    fps, fns, gallery = select_cases(items, 4, 5)
    normal = sorted((it for it in items if it.label == 0), key=lambda it: it.score, reverse=True)
    anomalous = sorted((it for it in items if it.label == 1), key=lambda it: it.score)
    assert fps == normal[:4] and fns == anomalous[:4]
    assert len(gallery) == 5 and not {id(g) for g in gallery} & {id(x) for x in fps + fns}
    assert [g.score for g in gallery] == sorted((g.score for g in gallery), reverse=True)


# ------------------------------------------------------------------------------------------------- tables/files
def test_format_percent():
    assert format_percent(0.98765) == "98.8"
    assert format_percent(1) == "100.0"
    assert format_percent(np.float32(0.5)) == "50.0"
    assert format_percent(0.0) == "0.0"
    for undefined in (NAN, None, "n/a", np.float64("nan")):
        assert format_percent(undefined) == "–"


def test_metric_columns_order_and_extras():
    metrics = {
        "mAD": 0.1,
        "per_category": {"a": {"custom": 0.3, "pixel_AP": 0.2, "AUC_DF": 0.9, "note": "text"}, "b": {"image_AUROC": 1}},
    }
    assert metric_columns(metrics) == ["image_AUROC", "pixel_AP", "mAD", "AUC_DF", "custom"]


def test_metrics_files_round_trip(tmp_path):
    metrics = make_metrics()
    metrics["per_category"]["wood"]["image_AP"] = np.float64(0.1 + 0.2)  # full precision must survive
    json_path, csv_path = write_metrics_files(tmp_path, metrics)
    loaded = json.loads(json_path.read_text())
    assert loaded["definition"] == "exact" and loaded["metrics_version"] == "1.0"
    assert loaded["pixel_AUROC"] is None  # NaN → null (strict JSON)
    assert loaded["per_category"]["bottle"]["image_AUROC"] == 0.98765
    assert loaded["per_category"]["wood"]["image_AP"] == 0.1 + 0.2
    with csv_path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    columns = ["image_AUROC", "image_AP", "pixel_AUROC", "pixel_AUPRO", "mAD"]
    assert rows[0] == ["category", *columns]
    assert [r[0] for r in rows[1:]] == [*CATEGORIES, "mean"]
    for row in rows[1:]:
        source = metrics if row[0] == "mean" else metrics["per_category"][row[0]]
        for col, cell in zip(columns, row[1:], strict=True):
            if math.isnan(source[col]):
                assert cell == ""
            else:
                assert float(cell) == float(source[col])


def test_metrics_files_are_not_overwritten(tmp_path):
    (tmp_path / "metrics.csv").write_text("mine")
    with pytest.raises(OutputExistsError):
        write_metrics_files(tmp_path, make_metrics())
    assert not (tmp_path / "metrics.json").exists()  # nothing half-written
    assert (tmp_path / "metrics.csv").read_text() == "mine"
    write_metrics_files(tmp_path, make_metrics(), overwrite=True)
    assert (tmp_path / "metrics.csv").read_text().startswith("category,")


def _full_size_predictions() -> list[dict]:
    """Maps at the mask size (the engine's case), so the report can draw pixel curves."""
    preds = make_predictions(n_per_category=6)
    rng = np.random.default_rng(3)
    for rec in preds:
        rec["anomaly_map"] = rng.random(rec["gt_mask"].shape) * 0.6 + 0.5 * rec["gt_mask"]
    return preds


def test_pixel_curves_come_from_maps_and_masks_of_the_same_size(tmp_path):
    from sklearn.metrics import roc_auc_score

    from ssmad.metrics import aupro
    from ssmad.viz.report import _items, _pixel_curves

    preds = _full_size_predictions()
    preds[0]["gt_mask"] = None  # a normal image without a mask file: all its pixels are normal
    preds[1]["gt_mask"] = None  # an anomalous image without a mask: no pixel labels, left out
    preds[2]["anomaly_map"] = preds[2]["anomaly_map"][:10]  # another size than its mask: left out
    curves = _pixel_curves(_items(preds), fpr_limit=0.3)
    assert set(curves["pixel_roc"]) == set(curves["pixel_pro"]) == set(CATEGORIES)
    for cat in CATEGORIES:
        used = [r for i, r in enumerate(preds) if r["category"] == cat and i not in (1, 2)]
        maps = np.stack([r["anomaly_map"] for r in used])
        masks = np.stack([np.zeros(maps.shape[1:], bool) if r["gt_mask"] is None else r["gt_mask"] for r in used])
        roc, pro = curves["pixel_roc"][cat], curves["pixel_pro"][cat]
        assert roc["auc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-3)
        assert pro["aupro"] == pytest.approx(aupro(maps, masks), abs=1e-3)
        assert roc["fpr"][0] == 0 and roc["fpr"][-1] == 1 and pro["fpr"][-1] == pytest.approx(0.3)

    path = write_report(tmp_path, make_metrics(), preds)
    parser, _ = parse(path)
    plots = [img["alt"] for img in parser.images if img["figure"] != "True" and "scale" not in img["alt"]]
    assert plots == ["Image ROC", "Pixel ROC", "Pixel PRO"]
    for img in parser.images:
        decode_png(img["src"])


def test_no_pixel_curves_without_full_size_maps_or_when_given(report, tmp_path):
    _, parser, _, _ = report  # the fixture's maps are half the mask size
    assert not any(img["alt"].startswith("Pixel") for img in parser.images)
    given = {"pixel_roc": {"bottle": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.9, 1.0]}}}
    path = write_report(tmp_path, make_metrics(), _full_size_predictions(), curves=given)
    parser, _ = parse(path)
    plots = [img["alt"] for img in parser.images if img["figure"] != "True" and "scale" not in img["alt"]]
    assert plots == ["Image ROC", "Pixel PRO", "Pixel ROC"]  # the given ROC replaces the computed one
