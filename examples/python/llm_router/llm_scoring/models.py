"""Which backends serve which model, from a backend label (`model` by default): a
comma-separated list of the model names a backend serves, e.g.
`labels = { model = "llama-3-8b, llama-3-8b-instruct" }`. Names match exactly, as vLLM's
`--served-model-name` does.

A backend without the label (or with an empty one) serves any model: a pool of identical
replicas needs no labels at all. Built once per backend set (`backends_changed`), so a
request's filter is one dict lookup. The same rules as plugins/llm_router/src/models.rs.
"""

from typing import Mapping, Optional, Sequence

#: The answer for a model no backend serves.
UNKNOWN_MODEL = None


class ModelFilter:
    """The model -> backends map of one backend set."""

    def __init__(self, labels: Sequence[Mapping[str, str]] = (), label: str = "model") -> None:
        """`labels[i]` are backend `i`'s labels; `label` is the one listing its models."""
        served: dict[str, list[int]] = {}
        any_model: list[int] = []
        for index, backend_labels in enumerate(labels):
            names = [m.strip() for m in backend_labels.get(label, "").split(",") if m.strip()]
            if not names:
                any_model.append(index)
            for name in dict.fromkeys(names):  # a name listed twice counts once
                served.setdefault(name, []).append(index)
        #: For each named model: the backends listing it plus those serving any model.
        self.served = {name: sorted(set(indexes) | set(any_model))
                       for name, indexes in served.items()}
        self.any_model = any_model
        self.all = list(range(len(labels)))

    def eligible(self, model: Optional[str]) -> Optional[list[int]]:
        """The backends for a request naming `model` (every backend when it names none), or
        `UNKNOWN_MODEL` (None) when no backend serves it."""
        if model is None:
            return self.all
        backends = self.served.get(model, self.any_model)
        return backends if backends else UNKNOWN_MODEL
