"""The run machinery: what lands where, and a terminal that stays readable."""
import io as text_io
import logging

from tqdm import tqdm

from common.runs import ProgressAwareHandler


def test_log_lines_and_progress_bars_do_not_share_a_row():
    stream = text_io.StringIO()
    handler = ProgressAwareHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("compete.test-progress")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with tqdm(total=10, file=stream, desc="folds", ncols=60, mininterval=0) as bar:
            bar.update(3)
            logger.warning("fold 3 done")
            bar.update(3)
    finally:
        logger.removeHandler(handler)
    # What a terminal shows on each row: the text after the row's last carriage return.
    rows = [row.split("\r")[-1] for row in stream.getvalue().split("\n")]
    assert "fold 3 done" in rows
    assert rows[-2].startswith("folds:  60%")  # the bar is drawn again below the line
