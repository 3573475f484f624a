"""Text logging: levels, the log file, rotation, config validation, the YAML logging block."""

from __future__ import annotations


import pytest

from toolkit.logging import LogConfig, LoggingError, LogManager, get_logger, setup_logging


@pytest.fixture(autouse=True)
def fresh_manager():
    yield
    LogManager.get_instance().cleanup()
    LogManager._instance = None


def test_debug_is_hidden_on_an_info_console_but_kept_in_the_debug_file(tmp_path, capsys):
    logger = setup_logging(LogConfig(name="levels", log_dir=tmp_path, console_level="INFO", file_level="DEBUG"))
    logger.debug("debug detail %d", 7)
    logger.info("info line %s", "shown")
    logger.warning("warning line")
    logger.finish()

    console = capsys.readouterr().err
    assert "info line shown" in console
    assert "warning line" in console
    assert "debug detail" not in console
    log_lines = (tmp_path / "train.log").read_text().splitlines()
    assert [line.split(" levels: ")[1] for line in log_lines] == ["debug detail 7", "info line shown", "warning line"]
    assert " DEBUG   levels: " in log_lines[0]


def test_module_loggers_taken_before_setup_share_its_handlers(tmp_path):
    module_logger = get_logger("toolkit.data.dataset")
    logger = setup_logging(LogConfig(name="run", log_dir=tmp_path))
    module_logger.info("from the dataset")
    logger.finish()
    assert "INFO    toolkit.data.dataset: from the dataset" in (tmp_path / "train.log").read_text()


def test_a_small_max_file_bytes_rotates_into_backups(tmp_path):
    logger = setup_logging(LogConfig(name="rotate", log_dir=tmp_path, max_file_bytes=1000, backup_count=2))
    for index in range(60):
        logger.info("line %03d %s", index, "x" * 40)
    logger.finish()

    files = sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("train.log"))
    assert files == ["train.log", "train.log.1", "train.log.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 1000
    newest = (tmp_path / "train.log").read_text().splitlines()
    older = (tmp_path / "train.log.1").read_text().splitlines()
    assert "line 059" in newest[-1]
    assert int(older[-1].split("line ")[1][:3]) + 1 == int(newest[0].split("line ")[1][:3])


def test_no_log_dir_means_console_only(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    logger = setup_logging("console_only")
    logger.info("only on the console")
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.finish()
    assert "only on the console" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_setup_with_a_name_after_setup_returns_a_logger_of_the_same_process(tmp_path):
    first = setup_logging(LogConfig(name="first", log_dir=tmp_path))
    again = setup_logging("other")
    again.info("through the same handlers")
    first.finish()
    assert "other: through the same handlers" in (tmp_path / "train.log").read_text()


def test_exception_records_the_traceback(tmp_path):
    logger = setup_logging(LogConfig(name="errors", log_dir=tmp_path))
    try:
        raise ValueError("bad batch")
    except ValueError:
        logger.exception("step failed")
    logger.finish()
    text = (tmp_path / "train.log").read_text()
    assert "ERROR   errors: step failed" in text
    assert "ValueError: bad batch" in text


def test_context_manager_records_the_error_and_closes(tmp_path):
    with pytest.raises(RuntimeError):
        with setup_logging(LogConfig(name="ctx", log_dir=tmp_path)) as logger:
            logger.info("inside")
            raise RuntimeError("out of memory")
    assert not LogManager.get_instance().is_configured
    text = (tmp_path / "train.log").read_text()
    assert "Stopped by RuntimeError: out of memory" in text


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"console_level": "LOUD"}, "console_level is 'LOUD'"),
        ({"progress_smoothing": 0.0}, "progress_smoothing is 0.0"),
        ({"max_file_bytes": 100, "backup_count": 0}, "never rotates"),
        ({"metrics_window": 0}, "metrics_window is 0"),
    ],
)
def test_invalid_settings_name_the_setting(settings, message):
    with pytest.raises(LoggingError, match=message):
        LogConfig(**settings)


def test_unwritable_log_dir_is_an_actionable_error(tmp_path):
    blocker = tmp_path / "file_not_dir"
    blocker.write_text("")
    with pytest.raises(LoggingError, match="Cannot open the log file .*writable folder"):
        setup_logging(LogConfig(name="bad", log_dir=blocker / "logs"))


def test_yaml_logging_block_is_the_source_of_the_runtime_config(tmp_path):
    from toolkit.config import GenerateLoggingConfig, LoggingConfig

    block = LoggingConfig(verbose=True, flush_every=7, use_tensorboard=False, metrics_window=20, backup_count=5)
    config = LogConfig.from_yaml_logging(block, tmp_path, "my_lora")
    assert config.name == "my_lora"
    assert config.console_level == "DEBUG"
    assert config.enable_tensorboard is False
    assert (config.tensorboard_flush_every, config.metrics_window, config.backup_count) == (7, 20, 5)
    # a generate block has no metrics fields: they come from the training block's schema defaults
    generate = LogConfig.from_yaml_logging(GenerateLoggingConfig(), tmp_path, "gen")
    assert generate.filename == "generate.log" and generate.enable_tensorboard is False
    assert generate.metrics_window == LoggingConfig.model_fields["metrics_window"].default
    # LogConfig's own defaults are the schema's, not a second table
    assert LogConfig().max_file_bytes == LoggingConfig().max_file_bytes
    assert LogConfig().filename == LoggingConfig().log_file
    quiet = LogConfig.from_yaml_logging(None, tmp_path, "my_lora")
    assert quiet.console_level == "INFO"
    assert quiet.enable_tensorboard is True
    assert quiet.tensorboard_path == tmp_path / "tensorboard"


def test_python_warnings_are_captured_into_the_log(tmp_path):
    import warnings

    logger = setup_logging(LogConfig(name="warn", log_dir=tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("fp16 weights cast to fp32", UserWarning)
    logger.finish()
    assert "WARNING py.warnings:" in (tmp_path / "train.log").read_text()
    assert "UserWarning: fp16 weights cast to fp32" in (tmp_path / "train.log").read_text()


def test_seed_002_calls_work_as_written(tmp_path, capsys):
    # shared/seeds/002: setup_logging(module_name=...), setup_logging(config=...), and the logger as a context manager.
    named = setup_logging(module_name="my_module")
    named.info("starting process")
    assert named.name.endswith("my_module")
    assert "my_module: starting process" in capsys.readouterr().err
    with setup_logging(config=LogConfig(name="ctx", log_dir=tmp_path)) as logger:
        logger.warning("inside")
    assert "ctx: inside" in (tmp_path / "train.log").read_text()
    with pytest.raises(TypeError, match="not both"):
        setup_logging(LogConfig(name="x"), module_name="y")
