"""Scene state: what is where in one frame, the ground truth behind labels and events.

A ``SceneState`` holds the camera, the counter look and a list of ``SceneObject``s with poses in cm on the
counter plane. The renderer draws it; stills sample one, clips script one over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from training.synth.camera import Camera


@dataclass
class SceneObject:
    """One thing on the counter. ``class_name`` is its kind of detector class, None for distractors;
    ``label`` is the class it is labelled as.

    Pose: (x, y) cm on the counter plane, ``angle`` rad, ``z`` cm height of its base. ``size`` and ``height``
    are kind-specific dimensions in cm; ``style`` holds its look; ``seed`` makes its texture reproducible;
    ``parent`` is the board or container it rests on.
    """

    id: int
    kind: str  # board | food | container | knife | cloth | sponge | bottle | jar | arm
    class_name: str | None
    x: float
    y: float
    angle: float = 0.0
    z: float = 0.0
    size: tuple[float, ...] = ()
    height: float = 0.0
    style: dict = field(default_factory=dict)
    seed: int = 0
    parent: int | None = None

    @property
    def label(self) -> str | None:
        """The detector class: ``class_name``, but ``container_empty`` for a container without contents."""
        if self.kind == "container" and not self.style.get("contents"):
            return "container_empty"
        return self.class_name


@dataclass
class SceneState:
    """Everything needed to render one frame, and the ground truth behind its labels."""

    camera: Camera
    counter_seed: int
    wall_y_cm: float
    objects: list[SceneObject]

    def by_id(self, oid: int) -> SceneObject:
        return next(o for o in self.objects if o.id == oid)

    def on(self, parent_id: int) -> list[SceneObject]:
        """Objects resting on (or in) ``parent_id``."""
        return [o for o in self.objects if o.parent == parent_id]

    def copy(self) -> SceneState:
        return replace(self, objects=[replace(o) for o in self.objects])
