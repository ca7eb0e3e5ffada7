"""PyTorch Lightning under its older package name: ``import pytorch_lightning as pl``."""

from runstack.integrations.lightning import build_logger

RunstackLogger = build_logger("pytorch_lightning")
