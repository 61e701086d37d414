"""Knowledge distillation from one or several trained models (Hinton et al., 2015).

A :class:`TeacherEnsemble` holds the teachers and gives, for a batch of the *student's* inputs, the
mean of the teachers' softened probabilities ``softmax(logits / T)``. Each teacher sees the batch
as its own preprocessing makes faces: the student's tensor is un-normalised, converted to the
teacher's channels, resized to its input size and normalised as it was trained
(:func:`adapt_faces`). So a 48 px grey student can learn from a 64 px or RGB teacher on the very
same augmented faces.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..exceptions import IncompatibleComponentsError, InvalidOptionError
from ..inference import InferenceModel
from ..preprocessing import FacePreprocessor, rgb_to_gray

__all__ = ["TeacherEnsemble", "adapt_faces", "distillation_loss"]


def _normalisation(pre: FacePreprocessor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(pre.mean, dtype=dtype).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=dtype).view(1, -1, 1, 1)
    return mean, std


def check_same_margin(student: FacePreprocessor, teacher: FacePreprocessor, name: str = "the teacher") -> None:
    """Refuse a teacher whose crops have another margin: a prepared face holds no pixels outside its crop.

    Raises
    ------
    IncompatibleComponentsError
        The margins differ; the message names both.
    """
    if student.margin != teacher.margin:
        raise IncompatibleComponentsError(
            f"The student crops faces with margin {student.margin}, {name} with {teacher.margin}: "
            "a prepared face cannot be re-cropped. Distil from teachers trained with the same margin."
        )


def adapt_faces(x: torch.Tensor, source: FacePreprocessor, target: FacePreprocessor) -> torch.Tensor:
    """Turn faces prepared by ``source`` into the faces ``target`` would have prepared.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)`` faces as ``source`` makes them (any memory layout).
    source, target : FacePreprocessor
        The student's and the teacher's preprocessing. Their crop margins must agree: a tensor holds
        no pixels outside its crop.

    Returns
    -------
    torch.Tensor
        ``(N, C', H', W')`` float32 in ``target``'s channels, size and normalisation; ``x`` itself when
        the two preprocessings are equal.

    Raises
    ------
    IncompatibleComponentsError
        The crop margins differ.

    Examples
    --------
    >>> import torch
    >>> grey48 = FacePreprocessor(size=48, channels=1)
    >>> rgb64 = FacePreprocessor(size=64, channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    >>> adapt_faces(torch.rand(2, 1, 48, 48), grey48, rgb64).shape
    torch.Size([2, 3, 64, 64])
    """
    if source.to_dict() == target.to_dict():
        return x
    check_same_margin(source, target)
    mean, std = _normalisation(source, x.dtype)
    x = (x * std + mean).clamp(0.0, 1.0)  # back to pixels in [0, 1]
    if x.shape[1] == 3 and target.channels == 1:
        x = rgb_to_gray(x)
    elif x.shape[1] == 1 and target.channels == 3:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != tuple(target.size):  # type: ignore[arg-type]
        # The resize FacePreprocessor.faces applies to a crop of the student's size.
        x = F.interpolate(x, size=target.size, mode="bilinear", align_corners=False, antialias=True)
        x = x.clamp(0.0, 1.0)
    mean, std = _normalisation(target, x.dtype)
    return ((x - mean) / std).contiguous()


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's distillation term: ``T^2 * KL(teacher || softmax(student / T))``, averaged over the batch.

    Parameters
    ----------
    student_logits : torch.Tensor
        ``(N, K)`` raw logits of the student.
    teacher_probs : torch.Tensor
        ``(N, K)`` the teachers' softened probabilities (:meth:`TeacherEnsemble.soft_targets` at the
        same ``temperature``).
    temperature : float
        Softmax temperature, > 0.

    Returns
    -------
    torch.Tensor
        A scalar; 0 when the student's softened distribution equals the teachers'.
    """
    log_p = F.log_softmax(student_logits / temperature, dim=1)
    return F.kl_div(log_p, teacher_probs, reduction="batchmean") * temperature * temperature


class TeacherEnsemble:
    """Trained models whose mean softened probabilities teach a student.

    Parameters
    ----------
    teachers : sequence of InferenceModel
        One or more trained models with the student's labels, in order.
    student : FacePreprocessor
        How the student's inputs are prepared; each teacher's inputs are adapted from them.
    names : sequence of str, optional
        What the teachers were loaded from, for messages and records.

    Raises
    ------
    InvalidOptionError
        No teacher.
    IncompatibleComponentsError
        Teachers whose labels differ, or whose crop margin differs from the student's.
    """

    def __init__(
        self, teachers: Sequence[InferenceModel], student: FacePreprocessor, names: Sequence[str] | None = None
    ) -> None:
        if not teachers:
            raise InvalidOptionError("Distillation needs at least one teacher; got none.")
        self.teachers = list(teachers)
        self.names = list(names) if names is not None else [f"teacher {i}" for i in range(len(self.teachers))]
        self.student = student
        labels = self.teachers[0].labels
        for name, teacher in zip(self.names, self.teachers, strict=True):
            if list(teacher.labels) != list(labels):
                raise IncompatibleComponentsError(
                    f"Teacher {name!r} predicts {list(teacher.labels)}, the first teacher {list(labels)}: "
                    "an ensemble needs the same classes in the same order."
                )
            check_same_margin(student, teacher.preprocessor, f"teacher {name!r}")
            teacher.model.eval()
        self.labels = list(labels)

    @classmethod
    def load(cls, sources: str | Sequence[str], student: FacePreprocessor) -> TeacherEnsemble:
        """Load teachers by bundled model name or run directory.

        Parameters
        ----------
        sources : str or sequence of str
            Names such as ``"mobilenetv2"`` or directories that ``emotionkit train`` wrote; a single
            string may list several, comma-separated.
        student : FacePreprocessor
            The student's preprocessing.

        Returns
        -------
        TeacherEnsemble
        """
        from ..recognizer import EmotionRecognizer

        names = teacher_names(sources)
        teachers = [EmotionRecognizer.from_pretrained(name, detector=None).inference for name in names]
        return cls(teachers, student, names)

    @torch.no_grad()
    def soft_targets(self, x: torch.Tensor, temperature: float) -> torch.Tensor:
        """Return the teachers' mean ``softmax(logits / temperature)`` for a batch of student inputs.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, H, W)`` faces as the student's preprocessing makes them.
        temperature : float
            Softmax temperature, > 0.

        Returns
        -------
        torch.Tensor
            ``(N, K)`` rows that sum to 1.
        """
        total = None
        for teacher in self.teachers:
            faces = adapt_faces(x, self.student, teacher.preprocessor)
            # One crop each: the augmented batch is already flipped at random, and a teacher's own flip
            # test-time augmentation would double its cost.
            probs = F.softmax(teacher.logits(faces, flip_tta=False).float() / temperature, dim=1)
            total = probs if total is None else total + probs
        assert total is not None
        return total / len(self.teachers)


def teacher_names(sources: str | Sequence[str]) -> list[str]:
    """Split ``sources`` into teacher names (comma-separated strings are split; blanks dropped).

    Parameters
    ----------
    sources : str or sequence of str
        As :meth:`TeacherEnsemble.load` takes them.

    Returns
    -------
    list of str

    Examples
    --------
    >>> teacher_names("mobilenetv2, cnn")
    ['mobilenetv2', 'cnn']
    >>> teacher_names(["resnet", "vit,cnn"])
    ['resnet', 'vit', 'cnn']
    """
    items = [sources] if isinstance(sources, str) else list(sources)
    return [name.strip() for item in items for name in item.split(",") if name.strip()]
