"""Detection: a second box on the same face is dropped; separate faces, even touching ones, stay."""
import numpy as np

from models.detection import DetectedFace, drop_overlapping, most_prominent


def _face(box, prob):
    return DetectedFace(tuple(float(v) for v in box), np.zeros((5, 2), np.float32), prob,
                        np.zeros((4, 4, 3), np.uint8))


def test_a_box_inside_a_more_probable_box_on_the_same_face_is_dropped():
    big = _face((10, 10, 110, 110), 0.99)
    inner = _face((30, 30, 90, 95), 0.95)  # IoU 0.39: MTCNN's NMS keeps it; 100% covered
    other = _face((120, 10, 200, 90), 0.97)  # another person next to it
    touching = _face((100, 100, 160, 160), 0.93)  # overlaps big by a corner only
    kept = drop_overlapping([inner, big, other, touching])
    assert [f.prob for f in kept] == [0.99, 0.97, 0.93]


def test_the_more_probable_of_two_overlapping_boxes_is_kept_and_the_threshold_applies():
    a, b = _face((0, 0, 100, 100), 0.91), _face((20, 0, 120, 100), 0.98)  # covered 80%
    assert [f.prob for f in drop_overlapping([a, b])] == [0.98]
    assert len(drop_overlapping([a, b], max_overlap=0.9)) == 2
    assert drop_overlapping([]) == []


def test_the_prominent_face_counts_only_the_part_of_a_box_inside_the_photo():
    def face(box):
        return DetectedFace(box, np.zeros((5, 2), np.float32), 0.99, np.zeros((4, 4, 3), np.uint8))

    subject = face((40.0, 30.0, 110.0, 120.0))
    # a close face cut by the left edge: MTCNN's box of the whole face is 24x the subject's, its visible part 0.7x
    cut = face((-300.0, -150.0, 30.0, 300.0))
    assert most_prominent([cut, subject], (150, 150)) == 1
    assert most_prominent([face((0.0, 0.0, 20.0, 20.0)), face((100.0, 100.0, 180.0, 180.0))], (200, 200)) == 1
    assert most_prominent([], (10, 10)) is None
