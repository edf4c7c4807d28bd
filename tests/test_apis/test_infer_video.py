"""apis.infer.write_video: the overlay video is read back, so a writer that silently loses
frames (OpenCV's VideoWriter on a full disk) is an error that leaves the earlier file whole."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from domino_seg.apis import infer
from domino_seg.errors import DominoSegError

FRAMES = 4


class FakeSegmenter:
    """What write_video uses of a Segmenter: each frame's prediction and its overlay."""
    classes = ('road', 'sky')
    condition = None

    def predict_iter(self, frames, batch_size):
        for frame in frames:
            yield SimpleNamespace(frame=frame, condition_probabilities=None)

    def overlay(self, prediction, alpha, legend_ids):
        return prediction.frame[..., ::-1].copy()  # RGB


@pytest.fixture
def video(tmp_path):
    path = tmp_path / 'in' / 'drive.mp4'
    path.parent.mkdir()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 5, (64, 32))
    for i in range(FRAMES):
        writer.write(np.full((32, 64, 3), 40 * i, np.uint8))
    writer.release()
    return infer.Input(path=str(path), stem='drive')


CFG = OmegaConf.create(dict(video_fps=None, video_codec='mp4v', batch_size=2, alpha=0.5))


def test_every_frame_is_written_and_counted(video, tmp_path):
    record = infer.write_video(FakeSegmenter(), video, str(tmp_path / 'out'), CFG)
    assert record['frames'] == FRAMES
    capture = cv2.VideoCapture(record['overlay'])
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES


def test_a_writer_that_loses_frames_is_an_error_and_the_earlier_video_stays(video, tmp_path,
                                                                            monkeypatch):
    out = tmp_path / 'out'
    out.mkdir()
    earlier = out / 'drive_overlay.mp4'
    earlier.write_bytes(b'the earlier video')
    real = cv2.VideoWriter

    class FullDisk:
        """Writes the first two frames, then drops the rest without a word."""
        def __init__(self, *args):
            self.writer, self.count = real(*args), 0

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return self.writer.isOpened()

        def write(self, frame):
            self.count += 1
            if self.count <= 2:
                self.writer.write(frame)

        def release(self):
            self.writer.release()
    monkeypatch.setattr(cv2, 'VideoWriter', FullDisk)
    with pytest.raises(DominoSegError, match=r'could not write .*drive_overlay\.mp4: OpenCV '
                                             r'wrote 2 of the video\'s 4 frames'):
        infer.write_video(FakeSegmenter(), video, str(out), CFG)
    assert earlier.read_bytes() == b'the earlier video'
    assert sorted(p.name for p in out.iterdir()) == ['drive_overlay.mp4']  # no temporary left
