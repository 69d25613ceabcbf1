"""Training, evaluation and BERT pretraining.

- :mod:`.schedules` -- per-epoch learning-rate recipes (``SCHEDULES``, ``build_schedule``)
- :mod:`.distributed` -- torchrun / DDP helpers (torchvision references names)
- :mod:`.logger` -- ``MetricLogger``, ``SmoothedValue``, JSONL + TensorBoard ``EventWriter``
- :mod:`.trainer` -- ``Trainer``, ``TrainConfig``, ``build_param_groups``, exact resume
- :mod:`.evaluator` -- ``evaluate`` (``refvos test``)
- :mod:`.pretrain_bert` -- masked-LM fine-tuning of BERT on training expressions

Submodules are imported on demand (``from refvos.engine.trainer import Trainer``).
"""
