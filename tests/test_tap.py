import gc

from wevoip import tap


def test_tune_gc_freezes_what_exists_and_raises_the_thresholds():
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        tap.tune_gc()
        assert gc.get_threshold() == tap.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
