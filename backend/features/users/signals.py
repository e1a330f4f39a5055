"""What other features may react to in users, without importing the users handlers.

    @user_deleted.connect
    def forget_their_things(user_id: int) -> None: ...

Receivers run in the request that deleted the user, after the commit.
"""

from blinker import Namespace

signals = Namespace()

# Sent with the deleted user's id as the sender.
user_deleted = signals.signal("user-deleted")
