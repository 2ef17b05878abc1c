"""The posteriordb models in examples/posteriordb agree with the reference posteriors.

Every parameter's posterior mean must satisfy |z| < 4 with
z = (mean - ref) / sqrt(mcse^2 + ref_mcse^2), for NUTS, HMC and ChEES-HMC on all six.
With 90 parameter checks (30 parameters, 3 methods) the chance that a correct sampler
trips any of them is about 90 * 6.3e-5 < 1%, if the MCSE estimates are right.
"""

from __future__ import annotations

import pytest

import bayes
from bayes import posteriordb

try:
    posteriordb.locate()
    HAVE_DATA = True
except posteriordb.PosteriorDBError:
    HAVE_DATA = False

pytestmark = pytest.mark.skipif(not HAVE_DATA, reason="posteriordb data folder not found")

#: method -> settings: moderate draws, chains vectorized (ChEES adapts jointly over many).
RUNS = {
    "nuts": dict(num_chains=4, num_warmup=500, num_samples=500),
    "hmc": dict(num_chains=4, num_warmup=500, num_samples=500),
    "chees": dict(num_chains=16, num_warmup=500, num_samples=250),
}
CASES = [(p, m) for p in posteriordb.POSTERIORS for m in RUNS]


@pytest.mark.slow
@pytest.mark.parametrize(("posterior", "method"), CASES)
def test_posterior_means_match_reference(posterior, method, x64):
    module = posteriordb.load_model(posterior)
    idata = bayes.sample(module.model, module.data, method=method, seed=1, progress=False,
                         **RUNS[method])  # fmt: skip
    z = posteriordb.z_scores(idata, posterior)
    assert set(z) == set(posteriordb.reference_means(posterior))
    bad = {name: round(value, 2) for name, value in z.items() if abs(value) >= 4}
    assert not bad, f"{posterior} with {method}: |z| >= 4 for {bad}"


def test_missing_data_folder_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("BAYES_POSTERIORDB", str(tmp_path / "nowhere"))
    monkeypatch.setattr(posteriordb, "_REPO", tmp_path)
    with pytest.raises(posteriordb.PosteriorDBError, match="BAYES_POSTERIORDB"):
        posteriordb.load_data("eight_schools")
