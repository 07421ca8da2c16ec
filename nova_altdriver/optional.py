"""The refusals of nova's optional driver calls this driver does not do.

A refusal is an exception that nova's compute manager turns into a clear
answer - an HTTP error, or a failed instance action event whose details
name nova_altdriver - leaving the server in the state it had, never ERROR.
What travels back over RPC to nova-api or nova-conductor must be one of
nova's own exceptions: any other class arrives there as a RemoteError,
which nova-api answers with 500 and the conductor's live migration with
ERROR.
"""

from nova import exception


def console_refused(name, instead):
    return exception.ConsoleTypeUnavailable(
        message='nova_altdriver offers no %s console; use %s' % (
            name, instead))
