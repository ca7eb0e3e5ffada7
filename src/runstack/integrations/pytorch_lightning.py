"""PyTorch Lightning under its older package name: ``import pytorch_lightning as pl``."""

from __future__ import annotations

from runstack.integrations._common import require
from runstack.integrations._lightning_logger import LoggerBody

_loggers = require("pytorch_lightning.loggers.logger", "lightning")
_rank_zero = require("pytorch_lightning.utilities.rank_zero", "lightning")
_fabric_logger = require("lightning_fabric.utilities.logger", "lightning")


class RunstackLogger(LoggerBody, _loggers.Logger):  # type: ignore[misc, name-defined]
    __doc__ = LoggerBody.__doc__
    _rank_zero_only = _rank_zero.rank_zero_only
    _convert_params = staticmethod(_fabric_logger._convert_params)
    _add_prefix = staticmethod(_fabric_logger._add_prefix)
