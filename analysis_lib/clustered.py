"""Cluster-robust inference for few centers (ANALYSIS.md §12): the bias-reduced linearization CR2
(Bell & McCaffrey 2002) with Satterthwaite degrees of freedom (Pustejovsky & Tipton 2018), as R's
``clubSandwich::vcovCR(fit, cluster, type = "CR2")`` and ``coef_test(test = "Satterthwaite")``
compute them for the weighted ``lm`` and Poisson ``glm`` of Table 2 (tests pin them to
clubSandwich at 1e-6).

Written here because no Python library computes CR2 with Satterthwaite df for weighted models.
The models are saturated in a few cells (``y ~ t`` and ``y ~ t * high``, see
:mod:`analysis_lib.effects`), so every matrix of clubSandwich has a closed form by cell:

* working model (clubSandwich's default for weighted fits): ``lm`` weights ``W = w`` and target
  ``Theta = I``; Poisson ``glm`` weights ``W = w / mu``, target ``Theta = mu / w`` (its inverse),
  design ``mu x`` (the derivative of the mean);
* hat block of center ``j``: ``H_jj[i, k] = [cell_i = cell_k] w_k / W_c`` (``W_c`` the cell's sum of
  weights); ``lm``: ``G_j = I - H_jj - H_jj' + X_j M X'W^2X M X_j'``; ``glm``:
  ``G_j = V_j (Theta_j - X~_j M X~_j') V_j`` with ``V_j = Theta_j^(1/2)``;
* adjustment ``A_j = V_j G_j^(-1/2) V_j`` (symmetric inverse square root, eigenvalues below
  1e-12 set to 0 as clubSandwich's ``matrix_power``); a contrast ``L`` of the cell coefficients has
  ``a_j = A_j (u_j * w_j)`` with ``u_i = L_c M_c`` (``M = diag(1 / W_c)`` or ``diag(1 / (m_c W_c))``),
  variance ``sum_j (a_j' r_j)^2`` (``r`` the response residuals);
* Satterthwaite: with ``z_j = (I - H)' a~_j`` (``a~_j`` the N-vector of ``a_j``) and
  ``P_jk = z_j' Theta z_k``, ``df = tr(P)^2 / sum(P^2)`` (clubSandwich's ``2 E^2 / V``).

A center's block is ``n_j x n_j``: memory grows with the square of the largest center, so CR2 is
computed up to :data:`MAX_CENTER_SIZE` patients per center and otherwise reported as not computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MAX_CENTER_SIZE = 5000  # a 5000 x 5000 block is 200 MB of float64


def _inverse_sqrt(G: np.ndarray) -> np.ndarray:
    """Symmetric ``G^(-1/2)``; eigenvalues at or below 1e-12 map to 0 (clubSandwich's matrix_power)."""
    values, vectors = np.linalg.eigh(G)
    power = np.zeros_like(values)
    np.power(values, -0.5, out=power, where=values > 1e-12)
    return (vectors * power) @ vectors.T


@dataclass(frozen=True)
class CR2Fit:
    """A weighted model saturated in cells with the CR2 adjustment of each center."""

    family: str
    coef: np.ndarray
    bread: np.ndarray
    w: np.ndarray = field(repr=False)
    cell: np.ndarray = field(repr=False)
    sum_w: np.ndarray = field(repr=False)
    resid: np.ndarray = field(repr=False)
    theta: np.ndarray = field(repr=False)
    adjustments: tuple[tuple[tuple[int, np.ndarray, np.ndarray], ...], ...] = field(repr=False)

    def contrast(self, L: np.ndarray | list[float]) -> tuple[float, float, float]:
        """Estimate, CR2 standard error and Satterthwaite df of ``L' coef`` (link scale).

        ``P = Z' Theta Z`` is assembled from sums by center and cell instead of the N x J matrix
        ``Z`` (4 GB at 10^6 patients in 500 centers): with ``Z_j = a~_j - w R[cell, j]``, ``R``
        the cell sums of ``a_j`` over ``W_c``, ``P = diag(sum_i theta a_j^2) - T'R - R'T + R'
        diag(Q) R``, where ``T[c, j] = sum theta w a_j`` over center ``j``'s patients in cell
        ``c`` and ``Q_c = sum theta w^2`` over the cell."""
        L = np.asarray(L, float)
        used = L != 0
        n, J, C = self.w.size, len(self.adjustments), self.sum_w.size
        u = np.zeros(n)
        rows = used[self.cell]
        u[rows] = (L * np.where(used, self.bread, 0.0))[self.cell[rows]]
        uw = u * self.w
        D, S, T = np.zeros(J), np.zeros((C, J)), np.zeros((C, J))
        var = 0.0
        for j, blocks in enumerate(self.adjustments):
            ar = 0.0
            for c, idx, A in blocks:  # a_j, one cell of the center at a time
                a = A @ uw[idx]
                theta = self.theta[idx]
                ar += float(a @ self.resid[idx])
                D[j] += theta @ (a * a)
                S[c, j], T[c, j] = a.sum(), (theta * self.w[idx]) @ a
            var += ar ** 2
        Q = np.bincount(self.cell, weights=self.theta * self.w ** 2, minlength=C)
        with np.errstate(divide="ignore", invalid="ignore"):
            R = np.where(self.sum_w[:, None] > 0, S / self.sum_w[:, None], 0.0)
        P = np.diag(D) - T.T @ R - R.T @ T + R.T @ (Q[:, None] * R)
        df = float(np.trace(P) ** 2 / np.sum(P ** 2)) if np.sum(P ** 2) > 0 else float("nan")
        return float(L[used] @ self.coef[used]), float(np.sqrt(var)), df


def fit_cells_cr2(y: np.ndarray, w: np.ndarray, cell: np.ndarray, n_cells: int, family: str,
                  cluster: np.ndarray) -> CR2Fit | None:
    """The CR2 fit of ``y`` on ``n_cells`` cells with weights ``w`` (see the module docstring);
    ``None`` when a center has more than :data:`MAX_CENTER_SIZE` patients."""
    y, w, cell = np.asarray(y, float), np.asarray(w, float), np.asarray(cell, int)
    codes = pd.factorize(np.asarray(cluster))[0]
    order = np.argsort(codes, kind="stable")
    groups = tuple(np.split(order, np.flatnonzero(np.diff(codes[order])) + 1))
    if max(g.size for g in groups) > MAX_CENTER_SIZE:
        return None
    sum_w = np.bincount(cell, weights=w, minlength=n_cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.bincount(cell, weights=w * y, minlength=n_cells) / sum_w
        mu = mean[cell]
        if family == "gaussian":
            coef, bread, theta = mean, 1.0 / sum_w, np.ones(y.size)
            spread = np.bincount(cell, weights=w ** 2, minlength=n_cells) / sum_w ** 2  # (M X'W^2X M)_cc
        else:
            coef, bread, theta = np.log(mean), 1.0 / (mean * sum_w), mu / w
            spread = mean / sum_w  # (X~ M X~')_ik within a cell: mu_c^2 / (m_c W_c)
    # G_j vanishes between patients of different cells, so A_j = V_j G_j^(-1/2) V_j is computed
    # cell by cell: an eigendecomposition of each cell's block instead of the center's whole block
    # (a 16th of the work for four cells of equal size)
    adjustments = []
    for members in groups:
        blocks = []
        for c in np.unique(cell[members]):
            idx = members[cell[members] == c]
            if family == "gaussian":
                hat = np.broadcast_to(w[idx] / sum_w[c], (idx.size, idx.size))
                G = np.eye(idx.size) - hat - hat.T + spread[c]
                blocks.append((int(c), idx, _inverse_sqrt(G)))
            else:
                root = np.sqrt(theta[idx])
                G = root[:, None] * (np.diag(theta[idx]) - spread[c]) * root[None, :]
                blocks.append((int(c), idx, root[:, None] * _inverse_sqrt(G) * root[None, :]))
        adjustments.append(tuple(blocks))
    return CR2Fit(family=family, coef=coef, bread=bread, w=w, cell=cell, sum_w=sum_w, resid=y - mu, theta=theta,
                  adjustments=tuple(adjustments))
