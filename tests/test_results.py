"""Results files: round trip, rejection of bad files, valid after every append."""

import json

import pytest

from xpubench.results.reader import collect_run_files, load_runs, read_run
from xpubench.results.schema import SCHEMA_VERSION, ResultsFileError
from xpubench.results.writer import RunWriter


def measurement(i, status="ok"):
    return {"suite": "normalization", "case": f"layernorm[b={i}]", "mode": "forward",
            "backend": "torch:cpu:fp32", "status": status, "time_s": {"median": 1e-3 * (i + 1)},
            "energy": {"joules_per_step": None, "method": "unavailable"}}


def test_round_trip_and_valid_after_each_append(tmp_path):
    path = tmp_path / "m1" / "run.json"
    w = RunWriter(path, {"id": "abc", "started_at": "2026-01-01T00:00:00+00:00"}, {"machine_id": "m1"})
    assert read_run(path)["measurements"] == []
    for i in range(3):
        w.append(measurement(i))
        doc = read_run(path)  # a reader mid-run sees a valid file with what exists so far
        assert len(doc["measurements"]) == i + 1
    w.finish()
    doc = read_run(path)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["run"]["finished_at"] is not None and doc["run"]["interrupted"] is False
    assert doc["measurements"][2]["time_s"]["median"] == pytest.approx(3e-3)
    assert doc["measurements"][0]["energy"]["joules_per_step"] is None
    assert not list(path.parent.glob(".*tmp"))  # no temporary files left behind
    assert path.stat().st_mode & 0o777 == 0o644


def test_nan_is_written_as_null_not_zero(tmp_path):
    path = tmp_path / "r.json"
    w = RunWriter(path, {"id": "x"}, {"machine_id": "m"})
    m = measurement(0)
    m["error_vs_fp32"] = float("nan")
    w.append(m)
    assert read_run(path)["measurements"][0]["error_vs_fp32"] is None


def test_truncated_file_is_rejected_with_one_line(tmp_path):
    path = tmp_path / "r.json"
    w = RunWriter(path, {"id": "x"}, {"machine_id": "m"})
    w.append(measurement(0))
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ResultsFileError) as e:
        read_run(path)
    msg = str(e.value)
    assert str(path) in msg and "truncated" in msg and "\n" not in msg


@pytest.mark.parametrize("doc,words", [
    ({"hello": 1}, "not an xpubench results file"),
    ([1, 2, 3], "not an xpubench results file"),
    ({"schema_version": SCHEMA_VERSION + 1, "run": {}, "machine": {}, "measurements": []}, "newer"),
    ({"schema_version": 1, "run": {}, "machine": {}, "measurements": [{"suite": "x"}]}, "lacks"),
    ({"schema_version": 1, "run": {}, "machine": {}, "measurements": [
        {"suite": "s", "case": "c", "mode": "m", "backend": "b", "status": "weird"}]}, "unknown status"),
])
def test_foreign_or_newer_files_are_rejected(tmp_path, doc, words):
    path = tmp_path / "f.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ResultsFileError) as e:
        read_run(path)
    assert words in str(e.value) and str(path) in str(e.value)


def test_missing_file_and_folder_expansion(tmp_path):
    with pytest.raises(ResultsFileError, match="no such file"):
        read_run(tmp_path / "nope.json")
    for name in ("a", "b"):
        RunWriter(tmp_path / name / "r.json", {"id": name}, {"machine_id": name})
    (tmp_path / "a" / "ceilings.json").write_text("{}")  # the probe's cache is not a run
    files = collect_run_files([tmp_path])
    assert [f.parent.name for f in files] == ["a", "b"]
    assert [r.id for r in load_runs([tmp_path]).runs] == ["a", "b"]
    with pytest.raises(ResultsFileError):
        collect_run_files([tmp_path / "missing"])


@pytest.mark.parametrize("levels", [100_000, 200])
def test_a_deeply_nested_file_is_one_line_in_report_and_compare(tmp_path, capsys, levels):
    """A hostile file (100,000 nested arrays: json's own recursion limit; 200: past ours)."""
    from xpubench.cli.main import main

    bad = tmp_path / "deep.json"
    bad.write_text("[" * levels + "]" * levels)
    assert main(["report", str(bad), "-o", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert "deep.json" in err and "nested" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["compare", str(bad), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "deep.json" in err and "nested" in err and len(err.strip().splitlines()) == 1


def test_fields_added_in_place_before_finish_are_written(tmp_path):
    """The run's end attaches roofline and scaling fields to the appended measurements."""
    path = tmp_path / "r.json"
    w = RunWriter(path, {"id": "x"}, {"machine_id": "m"})
    w.append(measurement(0))
    w.doc["measurements"][0]["roofline"] = {"fraction_of_bound": 0.5}
    w.finish()
    assert read_run(path)["measurements"][0]["roofline"] == {"fraction_of_bound": 0.5}
