"""The echo canceller's block kernel: a two-path partitioned-block frequency-domain adaptive
filter (PBFDAF, overlap-save), in plain typed Python compiled with numba.

Per block of ``B`` samples (FFT size ``N = 2B``, ``P`` partitions, filter length ``P*B``):

1. the far block (already delayed by the bulk delay) joins the previous one, ``X = rfft`` of
   the pair goes into a ring of the last ``P`` far spectra;
2. two filters run on that ring: the *foreground* ``Wf`` (its error is the output; it never
   adapts itself) and the *background* ``Wb`` (adapts every block with normalized step
   ``mu / (Pk + delta / P)`` per bin, ``Pk`` the far power of the partitions weighted by
   their shares of the step);
3. the background's gradient ``conj(X) * rfft([0, e_b])`` is unconstrained except for one
   partition per block, round robin, which is projected back to ``B`` taps (as WebRTC AEC3
   does): a full constraint would cost two FFTs per partition per block;
4. two-path control: when the background's smoothed error energy is clearly below the
   foreground's, it is copied to the foreground; when it is far above (it adapted on near-end
   speech: double talk), the foreground is copied back over it. Adaptation also stops while a
   double-talk detector fires (near-end energy the foreground's echo estimate cannot explain)
   and while the far end is silent.

Only the first ``A`` (``istate[ACTIVE]``) partitions run: every ``GROW_EVERY`` blocks (once
the foreground removes 3 dB) its partition energies, in groups of ``GROW_STEP``, decide whether
the room's response reaches past them (the louder of the last two groups holds more than
``GROW_ABOVE`` of the filter's energy and is at least 3 dB below the group four before it:
``A`` grows by a group, up to ``P``) or ends before (that group holds less than
``SHRINK_BELOW`` and is not decaying, or less than a tenth of it: the last group is zeroed and
``A`` shrinks, down to ``MIN_ACTIVE``). Cost
follows ``A``, not ``P``; the ring always holds ``P`` far spectra.

Every decision is taken once per block from that block's samples, so the output depends only
on the samples, never on how the caller chunked them.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numpy.typing import NDArray

from bargein.dsp._fft import irfft_py, rfft_py

F64 = NDArray[np.float64]
C128 = NDArray[np.complex128]
I64 = NDArray[np.int64]

# params layout (float64)
MU, GROW_EVERY, DELTA, FAR_FLOOR, COPY_BELOW, RESET_ABOVE, SMOOTH, SPEC_AVG, BETA0, BETA_MAX, \
    DT_HOLD, START_RATE, START_BLOCKS, DT_FLOOR, NEAR_FLOOR, MIN_ACTIVE, GROW_STEP, GROW_ABOVE, \
    SHRINK_BELOW, CONSTRAIN_PERIOD, SPEC_FLOOR = range(21)
N_PARAMS = 21
# fstate layout (float64): smoothed two-path error energies, leak regression, adaptation sum
EF, EB, PEY, PYY, LEAK, SUM_ADAPT, FG_RATIO, N_FSTATE = 0, 1, 2, 3, 4, 5, 6, 8
# istate layout (int64)
HEAD, BLOCKS, ADAPTED_FLAG, COPIES, RESETS, DT_BLOCKS, ADAPTED, DT_NOW, HOLD, ACTIVE, GROWN, \
    SHRUNK, N_ISTATE = range(13)
MIN_LEAK = 0.005


def aec_blocks_py(
    near: F64, far: F64, out: F64,
    xring: C128, wf: C128, wb: C128, pk: F64, xbuf: F64, work: F64, spec: C128,
    rev: I64, tw: C128, split: C128, z: C128,
    params: F64, fstate: F64, istate: I64, eh: F64, yh: F64, step: F64, yspec: C128,
    prop: F64,
) -> int:
    """Cancel echo from ``near`` block by block (``len(near) == len(far)``, a multiple of B);
    writes ``out`` and returns the number of blocks processed.

    ``xring``, ``wf``, ``wb``: (P, B+1) spectra; ``pk``: (B+1,) far power; ``xbuf``: the
    last 2B far samples; ``work``: 2B floats of scratch; ``spec``, ``yspec``: B+1 complex of
    scratch; ``eh``, ``yh``: smoothed error and echo-estimate power per bin; ``step``: the
    per-bin step of the last adapted block.

    Step control (after speex's MDF): the background adapts with, per bin, the ratio of the
    *residual echo* still in the foreground's error to that error's power, ``leak * |Y|^2 /
    |E|^2`` (at most 0.5), over ``P * Pk``. ``leak`` is a slow regression of the error's power
    on the echo estimate's power across bins. Near-end speech inflates ``|E|^2`` but not the
    residual, so the step falls by itself during double talk; before the filter has adapted
    at all, a fixed 0.25 (less when the error outweighs the far end) starts it.
    """
    parts = xring.shape[0]
    bins = xring.shape[1]
    b = bins - 1
    n = 2 * b
    nblocks: int = near.shape[0] // b
    mu = params[MU]
    delta = params[DELTA]
    smooth = params[SMOOTH]
    avg = params[SPEC_AVG]
    for blk in range(nblocks):
        at = blk * b
        # 1. far spectrum of the last two blocks into the ring.
        sx = 0.0
        for i in range(b):
            xbuf[i] = xbuf[b + i]
            v = far[at + i]
            xbuf[b + i] = v
            sx += v * v
        head = (istate[HEAD] + 1) % parts
        istate[HEAD] = head
        rfft_py(xbuf, xring[head], rev, tw, split, z)
        act = istate[ACTIVE]
        # 2. the foreground's echo estimate y and error e (the output); on the way, the far
        # power the update is normalized by, per bin: sum_p prop_p |X_p|^2 with the last
        # block's shares (the proportionate NLMS's input power). The current block's power
        # alone (smoothed) lets a quiet block after loud ones take a far too large step on
        # partitions that still hold the loud ones: at 512 ms it never converged (3.5 dB).
        for f in range(bins):
            spec[f] = 0j
            pk[f] = 0.0
        for p in range(act):
            row = (head - p) % parts
            g = prop[p]
            for f in range(bins):
                xf = xring[row, f]
                spec[f] += wf[p, f] * xf
                pk[f] += g * (xf.real * xf.real + xf.imag * xf.imag)
        irfft_py(spec, work, rev, tw, split, z)
        sef = 0.0
        syf = 0.0
        sey = 0.0
        sd = 0.0
        for i in range(b):
            y = work[b + i]
            d = near[at + i]
            e = d - y
            out[at + i] = e
            sd += d * d
            sef += e * e
            syf += y * y
            sey += e * y
        # |Y|^2 and |E|^2 per bin for the step control (zero-padded blocks).
        for i in range(b):
            work[i] = 0.0
        rfft_py(work, yspec, rev, tw, split, z)
        for i in range(b):
            work[b + i] = out[at + i]
        rfft_py(work, spec, rev, tw, split, z)
        pey = 0.0
        pyy = 0.0
        for f in range(bins):
            rf = spec[f].real * spec[f].real + spec[f].imag * spec[f].imag
            yf = yspec[f].real * yspec[f].real + yspec[f].imag * yspec[f].imag
            de = rf - eh[f]
            dy = yf - yh[f]
            pey += de * dy
            pyy += dy * dy
            eh[f] = (1.0 - avg) * eh[f] + avg * rf
            yh[f] = (1.0 - avg) * yh[f] + avg * yf
            step[f] = rf  # |E|^2, turned into the step below
            yspec[f] = complex(yf, 0.0)
        # 3. the background's error.
        for f in range(bins):
            spec[f] = 0j
        for p in range(act):
            row = (head - p) % parts
            for f in range(bins):
                spec[f] += wb[p, f] * xring[row, f]
        irfft_py(spec, work, rev, tw, split, z)
        seb = 0.0
        for i in range(b):
            e = near[at + i] - work[b + i]
            work[b + i] = e
            seb += e * e
        for i in range(b):
            work[i] = 0.0
        istate[BLOCKS] += 1
        istate[DT_NOW] = 0
        if istate[BLOCKS] % int(params[GROW_EVERY]) == 0 and fstate[FG_RATIO] <= 0.5:
            _fit_tail(wf, wb, params, istate)
        if sx <= params[FAR_FLOOR] * b:
            continue  # far end silent: nothing to learn, nothing to compare
        # 4. leak: how much of the echo estimate's power variation reappears in the error.
        see = sef + 1e-12
        if pyy > 0.0:
            pyy = np.sqrt(pyy)
            pey = pey / pyy
            a = min(params[BETA0] * syf, params[BETA_MAX] * see) / see
            fstate[PEY] = (1.0 - a) * fstate[PEY] + a * pey
            fstate[PYY] = (1.0 - a) * fstate[PYY] + a * pyy
        if fstate[PYY] < 1e-12:
            fstate[PYY] = 1e-12
        if fstate[PEY] < MIN_LEAK * fstate[PYY]:
            fstate[PEY] = MIN_LEAK * fstate[PYY]
        if fstate[PEY] > fstate[PYY]:
            fstate[PEY] = fstate[PYY]
        leak = fstate[PEY] / fstate[PYY]
        fstate[LEAK] = leak
        # residual-to-error ratio, at least the squared correlation of e and y, at most 0.5
        rer = (1e-4 * sx + 3.0 * leak * syf) / see
        floor = sey * sey / (see * syf + 1e-24)
        rer = min(max(rer, floor), 0.5)
        # A (nearly) silent mic while we play (muted, or the echo has not appeared yet)
        # holds no echo to learn: it must neither use up the start-up step nor count as
        # removed echo (0 error of 0 mic), or an echo appearing later meets a filter whose
        # residual-based step has no estimate to start from and stays at ~0.
        heard = sd > params[NEAR_FLOOR] * b
        if istate[ADAPTED_FLAG] == 0:
            rate = params[START_RATE] * min(sx, see) / see
            for f in range(bins):
                step[f] = rate
            if heard:
                fstate[SUM_ADAPT] += rate
            if fstate[SUM_ADAPT] > params[START_BLOCKS] and leak > 0.03:
                istate[ADAPTED_FLAG] = 1
        else:
            mean = 0.0
            for f in range(bins):
                e = step[f] + 1e-12
                r = min(leak * yspec[f].real, 0.5 * e)
                r = 0.7 * r + 0.3 * rer * e
                step[f] = r / e
                mean += r / e
            # Double talk: the error is mostly what the echo estimate cannot explain, and
            # loud enough to be speech (not the noise floor under a faint far end).
            if mean < 0.05 * bins and sef > params[DT_FLOOR] * b:
                istate[DT_NOW] = 1
                istate[DT_BLOCKS] += 1
                istate[HOLD] = int(params[DT_HOLD])
            elif istate[HOLD] > 0:
                istate[HOLD] -= 1
        # 5. two-path control; no copy to the foreground during (or just after) double talk,
        # when a lower background error may be near-end speech partly cancelled -- unless the
        # foreground removes less than 3 dB anyway (not converged: its echo estimate is too
        # weak for the detector to mean anything, and waiting would never end). FG_RATIO is
        # its error/mic energy ratio, tracked outside double talk only (starts at 1).
        fstate[EF] = smooth * fstate[EF] + (1.0 - smooth) * sef
        fstate[EB] = smooth * fstate[EB] + (1.0 - smooth) * seb
        if istate[HOLD] == 0 and heard:
            fstate[FG_RATIO] = 0.95 * fstate[FG_RATIO] + 0.05 * (sef / (sd + 1e-12))
        weak = fstate[FG_RATIO] > 0.5
        if fstate[EB] < params[COPY_BELOW] * fstate[EF] and (istate[HOLD] == 0 or weak):
            wf[:, :] = wb
            fstate[EF] = fstate[EB]
            istate[COPIES] += 1
        elif fstate[EB] > params[RESET_ABOVE] * fstate[EF]:
            wb[:, :] = wf
            fstate[EB] = fstate[EF]
            istate[RESETS] += 1
        # 6. adapt the background: W_p += mu step prop_p conj(X_p) E_b / (Pk + delta / P).
        # prop (proportionate update, as speex's MDF): each partition's share of the step
        # follows the square root of its energy, plus a tenth of the largest as a floor, so
        # the partitions that hold the room's early response learn fastest.
        istate[ADAPTED] += 1
        rfft_py(work, spec, rev, tw, split, z)
        top = 0.0
        for p in range(act):
            acc = 1e-12
            for f in range(bins):
                w = wb[p, f]
                acc += w.real * w.real + w.imag * w.imag
            prop[p] = np.sqrt(acc)
            top = max(top, prop[p])
        total = 0.0
        for p in range(act):
            prop[p] += 0.1 * top
            total += prop[p]
        for p in range(act):
            prop[p] = 0.99 * prop[p] / total
        reg = 0.0
        for f in range(bins):
            reg += pk[f]
        reg = params[SPEC_FLOOR] * reg / bins + delta / parts
        for f in range(bins):
            spec[f] = spec[f] * (mu * step[f] / (pk[f] + reg))
        for p in range(act):
            row = (head - p) % parts
            g = prop[p]
            for f in range(bins):
                wb[p, f] += xring[row, f].conjugate() * (spec[f] * g)
        # One partition per CONSTRAIN_PERIOD active ones, per block, is constrained to B taps
        # (the rest of the N-point circular response zeroed); round robin, so every partition
        # is projected every CONSTRAIN_PERIOD blocks or so, however long the filter.
        per = int(params[CONSTRAIN_PERIOD])
        k = (act + per - 1) // per
        for j in range(k):
            c = (istate[BLOCKS] * k + j) % act
            irfft_py(wb[c], work, rev, tw, split, z)
            for i in range(b, n):
                work[i] = 0.0
            rfft_py(work, wb[c], rev, tw, split, z)
    return nblocks


def _fit_tail_py(wf: C128, wb: C128, params: F64, istate: I64) -> None:
    """Grow or shrink the active partitions to the room's response as the foreground holds
    it (see the module's docstring). Partitions past the active ones are kept at zero."""
    parts = wf.shape[0]
    bins = wf.shape[1]
    act = istate[ACTIVE]
    step = int(params[GROW_STEP])
    total = 0.0
    last = 0.0
    prev = 0.0
    ref = 0.0
    for p in range(act):
        acc = 0.0
        for f in range(bins):
            w = wf[p, f]
            acc += w.real * w.real + w.imag * w.imag
        total += acc
        if p >= act - step:
            last += acc
        elif p >= act - 2 * step:
            prev += acc
        elif act - 6 * step <= p < act - 5 * step:
            ref += acc
    if total <= 0.0:
        return
    # The louder of the last two groups (the newest is still learning), and still decaying
    # (3 dB below the group four before it): past the room's tail the filter holds a flat
    # floor of misadjustment (-37..-42 dB per group in the small rooms), nothing to reach.
    tail = max(last, prev)
    decaying = ref > 2.0 * tail
    if act < parts and tail > params[GROW_ABOVE] * total and decaying:
        istate[ACTIVE] = min(parts, act + step)
        istate[GROWN] += 1
    elif act - step >= params[MIN_ACTIVE] and tail < params[SHRINK_BELOW] * total and (
        not decaying or tail < 0.1 * params[SHRINK_BELOW] * total
    ):
        # Below it and flat (the floor), or far below: a decaying tail just under the
        # threshold is the room's, still learning (shrinking it there flapped: 182 growths
        # and 164 shrinks in 24 s of a 600 ms room, the newest group zeroed each time).
        for p in range(act - step, act):
            for f in range(bins):
                wf[p, f] = 0j
                wb[p, f] = 0j
        istate[ACTIVE] = act - step
        istate[SHRUNK] += 1


_fit_tail: Callable[[C128, C128, F64, I64], None] = numba.njit(cache=True, nogil=True)(
    _fit_tail_py
)


aec_blocks: Callable[
    [F64, F64, F64, C128, C128, C128, F64, F64, F64, C128, I64, C128, C128, C128, F64, F64, I64,
     F64, F64, F64, C128, F64],
    int,
] = numba.njit(cache=True, nogil=True)(aec_blocks_py)
