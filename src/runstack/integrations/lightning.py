"""PyTorch Lightning: ``Trainer(logger=RunstackLogger(project="mnist"))``.

The logger's behaviour lives in ``_lightning_logger``; this file binds it to the
``lightning`` namespace (``runstack.integrations.pytorch_lightning`` binds ``pytorch_lightning``).
"""

from __future__ import annotations

from runstack.integrations._common import require
from runstack.integrations._lightning_logger import LoggerBody

_loggers = require("lightning.pytorch.loggers.logger", "lightning")
_rank_zero = require("lightning.pytorch.utilities.rank_zero", "lightning")
_fabric_logger = require("lightning.fabric.utilities.logger", "lightning")


class RunstackLogger(LoggerBody, _loggers.Logger):  # type: ignore[misc, name-defined]
    __doc__ = LoggerBody.__doc__
    _rank_zero_only = _rank_zero.rank_zero_only
    _convert_params = staticmethod(_fabric_logger._convert_params)
    _add_prefix = staticmethod(_fabric_logger._add_prefix)
