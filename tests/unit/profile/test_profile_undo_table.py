"""The feed marks as undoable exactly what the undo can reverse: one list, checked against _undo's cases."""

from profile_service import activity, undo


def test_the_feed_and_the_undo_agree_on_what_is_undoable() -> None:
    assert activity.UNDOABLE == undo.UNDOABLE
    assert undo.MFA_UNDOABLE | {undo.EMAIL_CHANGED, undo.IMPERSONATION_STARTED, undo.SSO_LINKED} == undo.UNDOABLE
