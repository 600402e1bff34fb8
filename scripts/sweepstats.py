"""Statistics shared by scripts/claims.py and scripts/ablation_differences.py: means over
training seeds with their standard errors, and differences of two such means with Welch's
degrees of freedom and the two-sided 95 % quantile of Student's t."""
import math

# Two-sided 95 % quantiles of Student's t, by degrees of freedom (Welch's df is rounded down,
# which only widens the interval).
T95 = [None, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
       2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086]


def t95(df):
    d = int(math.floor(df + 1e-9))  # 4 − 1 ulp is 4 degrees of freedom
    if d < 1:
        return float("inf")
    return T95[d] if d < len(T95) else 1.96 + 2.4 / d  # within 0.01 of the exact value beyond 20


def mean_se(v):
    """(mean, standard error, n) of the values v; the SE is NaN for one value; None for none."""
    if not v:
        return None
    m = sum(v) / len(v)
    if len(v) < 2:
        return m, float("nan"), len(v)
    var = sum((x - m) ** 2 for x in v) / (len(v) - 1)
    return m, math.sqrt(var / len(v)), len(v)


def diff(a, b):
    """(difference, SE, Welch df, t, critical t) of the means a − b (each from mean_se), or None
    without two values on each side."""
    if a is None or b is None or a[2] < 2 or b[2] < 2:
        return None
    (ma, sa, na), (mb, sb, nb) = a, b
    va, vb = sa * sa, sb * sb
    se = math.sqrt(va + vb)
    if se == 0:
        return ma - mb, 0.0, float("inf"), float("inf") if ma != mb else 0.0, 1.96
    df = (va + vb) ** 2 / ((va * va / (na - 1) if va else 0) + (vb * vb / (nb - 1) if vb else 0))
    return ma - mb, se, df, (ma - mb) / se, t95(df)


def sig(d):
    """+1 / −1 when the difference d (from diff) is significant at 95 % in that direction, 0 when
    it is not, None without a difference."""
    if d is None:
        return None
    x, se, df, t, tc = d
    return 0 if abs(t) < tc else (1 if x > 0 else -1)
