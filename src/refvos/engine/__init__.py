"""Training, evaluation and BERT pretraining.

- :mod:`.schedules` -- per-epoch learning-rate recipes (``SCHEDULES``, ``build_schedule``), ``CosineSchedule``
- :mod:`.distributed` -- torchrun / DDP helpers (torchvision references names)
- :mod:`.logger` -- ``MetricLogger``, ``SmoothedValue``, JSONL + TensorBoard ``EventWriter``
- :mod:`.trainer` -- ``Trainer``, ``TrainConfig``, ``build_param_groups``, exact resume
- :mod:`.evaluator` -- ``evaluate`` (``refvos test``)
- :mod:`.pretrain_bert` -- masked-LM fine-tuning of BERT on training expressions
- :mod:`.feature_cache` -- the frozen encoders' outputs computed once (``encode_split``, ``CachedSplit``)
- :mod:`.head_trainer` -- ``train_head`` / ``score_split`` on that cache, the run planned to a time
  budget (``StepPlan``): ``make demo``'s trainer

Submodules are imported on demand (``from refvos.engine.trainer import Trainer``).
"""
