"""Comparing the networks two training runs saved, for the tests of exact resumes."""
import torch


def latest_networks(folder, names):
    """{name: state_dict} of folder/latest_net_<name>.pth for each name."""
    return {name: torch.load(folder / f'latest_net_{name}.pth', weights_only=True) for name in names}


def assert_same_latest_networks(folder, expected_folder, names):
    """Bitwise the same tensors under the same keys, for each network name."""
    got, expected = latest_networks(folder, names), latest_networks(expected_folder, names)
    for name in names:
        assert got[name].keys() == expected[name].keys()
        for key in expected[name]:
            assert torch.equal(got[name][key], expected[name][key]), f'net{name} {key} differs'
