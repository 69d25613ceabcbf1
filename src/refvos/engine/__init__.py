"""Training, evaluation and BERT pretraining.

- :mod:`.schedules` -- per-epoch learning-rate recipes (``SCHEDULES``, ``build_schedule``), ``CosineSchedule``
- :mod:`.distributed` -- torchrun / DDP helpers (torchvision references names)
- :mod:`.logger` -- ``MetricLogger``, ``SmoothedValue``, JSONL + TensorBoard ``EventWriter``
- :mod:`.trainer` -- ``Trainer`` (the loop); :mod:`.train_config` -- ``TrainConfig``;
  :mod:`.param_groups` -- ``build_param_groups``; :mod:`.resume` -- exact resume;
  :mod:`.train_precision` -- precision ``auto`` for training
- :mod:`.evaluator` -- ``evaluate`` (``refvos test``); :mod:`.samples` -- sample identity, sharding;
  :mod:`.tables` -- metrics as text
- :mod:`.pretrain_bert` -- masked-LM fine-tuning of BERT on training expressions
- :mod:`.feature_cache` -- the frozen encoders' outputs computed once (``encode_split``, ``CachedSplit``)
- :mod:`.head_trainer` -- ``train_head`` / ``score_split`` on that cache, the run planned to a time
  budget (``StepPlan``): ``make demo``'s trainer

Submodules are imported on demand (``from refvos.engine.trainer import Trainer``).
"""
