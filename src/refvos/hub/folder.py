"""The Hugging Face folder format through ``huggingface_hub``'s :class:`ModelHubMixin`.

``save_pretrained(dir)`` writes ``config.json`` (refvos's config, with ``format`` and
``version``), ``model.safetensors`` (the network's ``state_dict``) and a model card
``README.md``; ``from_pretrained`` reads such a folder, or a Hub repository id
(``"org/name"``, through the hub cache: ``HF_HUB_OFFLINE=1`` reads it offline), with safetensors
alone (no pickle). ``push_to_hub`` is the mixin's. The reading itself is
:func:`refvos.checkpoint.read_pretrained`, which also serves ``--checkpoint FOLDER``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    model_from_checkpoint,
    pretrained_config,
    pretrained_tensors,
    read_pretrained,
)
from ..deps import require
from ..errors import InputError
from ..io import atomic_open
from ..modeling import RefVOS

CARD = """---
{{ card_data }}
---

# {{ model_name | default("RefVOS", true) }}

A [refvos](https://pypi.org/project/refvos/) referring-expression segmentation network
(RefVOS: Bellver et al. 2020, [arXiv 2010.00263](https://arxiv.org/abs/2010.00263)): `config.json` + `model.safetensors`.

```python
from refvos import Predictor
predictor = Predictor.from_pretrained("{{ repo_id | default("path/to/this/folder", true) }}")
mask = predictor.predict("photo.jpg", "the man on the left")
```
"""


def _mixin_class():
    """:class:`RefVOSPretrained`, defined on first use so that huggingface_hub stays optional."""
    hub = require(
        "huggingface_hub", "the Hugging Face folder format (save_pretrained / from_pretrained)"
    )

    class RefVOSPretrained(
        hub.ModelHubMixin,
        library_name="refvos",
        license="mit",
        model_card_template=CARD,
        pipeline_tag="image-segmentation",
        tags=["referring-expression-segmentation", "refvos"],
    ):
        """A :class:`RefVOS` network with the mixin's ``save_pretrained`` / ``from_pretrained``
        / ``push_to_hub``; ``config``: the ``config.json`` dict."""

        def __init__(self, config: dict) -> None:
            self.config = config
            self.model: RefVOS | None = None

        def _save_pretrained(self, save_directory: Path) -> None:
            from safetensors.torch import save

            data = save(pretrained_tensors(self.model), metadata={"format": "pt"})
            with atomic_open(Path(save_directory) / WEIGHTS_NAME, "wb") as f:
                f.write(data)

        @classmethod
        def _from_pretrained(
            cls,
            *,
            model_id: str,
            revision: str | None = None,
            cache_dir=None,
            force_download: bool = False,
            local_files_only: bool = False,
            token=None,
            config: dict | None = None,
            map_location: str = "cpu",
            **kwargs: Any,
        ):
            if os.path.isdir(model_id):
                config_file, weights = Path(model_id) / CONFIG_NAME, Path(model_id) / WEIGHTS_NAME
            else:

                def get(filename: str) -> str:
                    return hub.hf_hub_download(
                        repo_id=model_id,
                        filename=filename,
                        revision=revision,
                        cache_dir=cache_dir,
                        force_download=force_download,
                        token=token,
                        local_files_only=local_files_only,
                    )

                config_file, weights = get(CONFIG_NAME), get(WEIGHTS_NAME)
            ckpt = read_pretrained(config_file, weights)
            model = model_from_checkpoint(
                ckpt, model_id, map_location, kwargs.get("max_tokens"), kwargs.get("truncation")
            )
            return _wrap(cls, model)

    return RefVOSPretrained


def _wrap(cls, model: RefVOS):
    wrapped = cls(pretrained_config(model))
    wrapped.model = model
    return wrapped


def save_pretrained(model: RefVOS, folder: str | os.PathLike, **kwargs: Any) -> Path:
    """Write ``model`` as a pretrained folder (``config.json``, ``model.safetensors``, model card
    ``README.md``); ``kwargs`` go to the mixin's ``save_pretrained`` (``push_to_hub``,
    ``repo_id``, ``model_card_kwargs``...). Returns the folder."""
    model = getattr(model, "module", model)
    if Path(folder).exists() and not Path(folder).is_dir():
        raise InputError(
            f"{folder} is a file; save_pretrained writes a folder (config.json + {WEIGHTS_NAME})"
        )
    _wrap(_mixin_class(), model).save_pretrained(folder, **kwargs)
    return Path(folder)


def from_pretrained(
    folder_or_repo: str | os.PathLike,
    max_tokens: int | None = None,
    truncation: str | None = None,
    **kwargs: Any,
) -> RefVOS:
    """The network of a pretrained folder or Hub repository id (``kwargs``: the mixin's
    ``revision``, ``cache_dir``, ``local_files_only``, ``token``...)."""
    loaded = _mixin_class().from_pretrained(
        str(folder_or_repo), max_tokens=max_tokens, truncation=truncation, **kwargs
    )
    return loaded.model
