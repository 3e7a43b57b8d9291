"""A damaged .keras file is one line and exit 1 in every command that loads one;
Ctrl-C in a tuning search is one line and exit 130."""

import pytest

from apps import cli, generate, translate


@pytest.fixture
def truncated(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04 a zip archive cut short")
    return path


@pytest.mark.parametrize(
    "main, argv",
    [
        (generate.main, ["sample", "--model-path", "{path}", "--output", "{out}"]),
        (translate.main, ["translate", "--model-path", "{path}", "3 May 1979"]),
    ],
)
def test_a_truncated_keras_file_is_one_line_with_exit_1(
    main, argv, truncated, tmp_path, capsys
):
    out = tmp_path / "grid.png"
    argv = [a.format(path=truncated, out=out) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "is not a readable .keras file (truncated or corrupt" in err
    assert "Traceback" not in err and "File not found" not in err
    assert not out.exists()


def test_ctrl_c_in_a_search_says_how_to_resume(monkeypatch, capsys):
    import tuning.__main__ as tuning_main

    def interrupted_search(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(tuning_main, "search", interrupted_search)
    argv = ["search", "--model", "mlp", "--dataset", "fashion_mnist"]
    assert tuning_main.main([*argv, "--output", "x"]) == 130
    assert capsys.readouterr().err.strip() == cli.INTERRUPTED
