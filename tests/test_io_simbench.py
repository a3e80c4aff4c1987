"""SimBench import (sopjax.io.simbench): grids by code, their profiles as sampling time series."""

import warnings

import numpy as np
import pytest

import sopjax
from sopjax.errors import NetworkError
from sopjax.io.pandapower import from_pandapower

warnings.filterwarnings("ignore")


def test_unknown_simbench_code_is_refused():
    from sopjax.io.simbench import load_simbench

    with pytest.raises(NetworkError, match="unknown SimBench code '1-MV-nowhere--0-sw'"):
        load_simbench("1-MV-nowhere--0-sw")


def test_simbench_profiles_feed_the_uncertainty_model():
    import jax

    from sopjax.io.simbench import simbench_pandapower, simbench_profiles

    net_pp = simbench_pandapower("1-LV-rural1--0-sw")
    net = from_pandapower(net_pp, name="1-LV-rural1--0-sw")
    prof = simbench_profiles(net_pp, net, periods=slice(40, 44))
    assert prof.p_load_pu.shape == (4, net.n_bus) and prof.pv_p_pu.shape == (4, net.pv.count)
    model = sopjax.UncertaintyModel(load_profile=tuple(prof.load_multiplier(net)))
    samples = model.sample(net, prof.pv_forecast_pu(net), key=jax.random.key(0), n=3)
    assert np.asarray(samples.p_load_pu).shape[:2] == (3, 4)
