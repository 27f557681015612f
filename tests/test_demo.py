"""The quick start: with no --dataroot, train.py and test.py use the generated demo set and learn."""
import json

from tests.scripts import run


def test_demo_learns_well_beyond_the_untrained_generator(tmp_path):
    common = ['--checkpoints_dir', tmp_path / 'ck', '--display_id', 0]
    # A shortened demo run (the README's `make demo` trains 20 epochs); an untrained baseline beside it.
    proc = run('train.py', '--name', 'demo', *common, '--n_epochs', 2, '--n_epochs_decay', 0, '--seed', 0)
    assert 'built-in demo dataset' in proc.stdout
    run('train.py', '--name', 'untrained', *common, '--n_epochs', 1, '--n_epochs_decay', 0, '--lr', 0,
        '--max_dataset_size', 4)
    scores = {}
    for name in ('demo', 'untrained'):
        run('test.py', '--name', name, '--checkpoints_dir', tmp_path / 'ck', '--results_dir', tmp_path / 'res')
        metrics = json.loads((tmp_path / 'res' / name / 'test_latest' / 'metrics.json').read_text())
        assert metrics['count'] == 30
        scores[name] = metrics['mean']['l1']
    assert scores['demo'] < 0.5 * scores['untrained'], scores
