"""A fixed, tilted pinhole camera looking down at a prep counter.

World units are centimetres: X to the right along the counter, Y away from the camera, Z up; the counter
top is Z = 0. Flat things (boards, food, cloths) are drawn through the homography of their height's plane;
things with height (containers, bottles, arms) are drawn from projected 3-D points, so both agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Intrinsics ``K`` and world-to-camera pose ``R``, ``t`` for a ``width`` x ``height`` image."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 2) pixel coordinates."""
        pc = np.asarray(pts, np.float64) @ self.R.T + self.t
        uv = pc @ self.K.T
        return uv[:, :2] / uv[:, 2:3]

    def plane_homography(self, z_cm: float) -> np.ndarray:
        """3x3 homography taking (X, Y, 1) on the horizontal plane at height ``z_cm`` to pixels."""
        m = np.column_stack([self.R[:, 0], self.R[:, 1], self.R[:, 2] * z_cm + self.t])
        return self.K @ m

    def wall_homography(self, y_cm: float) -> np.ndarray:
        """Homography taking (X, Z, 1) on the vertical wall plane Y = ``y_cm`` to pixels."""
        m = np.column_stack([self.R[:, 0], self.R[:, 2], self.R[:, 1] * y_cm + self.t])
        return self.K @ m

    def unproject(self, uv: np.ndarray, z_cm: float = 0.0) -> np.ndarray:
        """(N, 2) pixels -> (N, 2) points (X, Y) on the plane at height ``z_cm``."""
        hinv = np.linalg.inv(self.plane_homography(z_cm))
        p = np.column_stack([uv, np.ones(len(uv))]) @ hinv.T
        return p[:, :2] / p[:, 2:3]

    def px_per_cm(self, x: float, y: float, z: float = 0.0) -> float:
        """Local image scale at a world point (mean of the X and Y directions)."""
        p = self.project(np.array([[x, y, z], [x + 1, y, z], [x, y + 1, z]]))
        return float((np.linalg.norm(p[1] - p[0]) + np.linalg.norm(p[2] - p[0])) / 2)


def look_at_camera(
    tilt_deg: float,
    distance_cm: float,
    px_per_cm: float,
    roll_deg: float = 0.0,
    pan_cm: float = 0.0,
    width: int = 640,
    height: int = 360,
) -> Camera:
    """A camera ``distance_cm`` from the world origin, looking at it from ``tilt_deg`` below horizontal.

    ``px_per_cm`` is the image scale at the origin, which fixes the focal length.
    """
    tilt = np.deg2rad(tilt_deg)
    centre = np.array([pan_cm, -distance_cm * np.cos(tilt), distance_cm * np.sin(tilt)])
    forward = -centre / np.linalg.norm(centre)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    roll = np.deg2rad(roll_deg)
    right, down = np.cos(roll) * right + np.sin(roll) * down, -np.sin(roll) * right + np.cos(roll) * down
    R = np.stack([right, down, forward])
    f = px_per_cm * distance_cm
    K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=R, t=-R @ centre, width=width, height=height)


def pose_matrix(x_cm: float, y_cm: float, angle_rad: float) -> np.ndarray:
    """3x3 plane transform: rotate by ``angle_rad`` then move to (x_cm, y_cm)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, x_cm], [s, c, y_cm], [0.0, 0.0, 1.0]])
