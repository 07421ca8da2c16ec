"""What nova asks of a guest through its QEMU guest agent: quiescing its
filesystems for a snapshot of its volumes, and a new password.

Both need the agent's port in the domain, which the image's
hw_qemu_guest_agent property asks for (domain.py); without it nova is told
QemuGuestAgentNotEnabled, as by the in-tree libvirt driver.
"""

from nova.api.metadata import password
from nova import crypto
from nova import exception
from oslo_log import log as logging
from oslo_serialization import base64

from nova_altdriver import guest as guest_mod

LOG = logging.getLogger(__name__)


def _require_agent(image_meta):
    if not image_meta.properties.get('hw_qemu_guest_agent'):
        raise exception.QemuGuestAgentNotEnabled()


def admin_user(instance):
    """Whose password nova's change password sets: the image's
    os_admin_user, else the usual administrator of its os_type.
    """
    user = instance.image_meta.properties.get('os_admin_user')
    if user:
        return user
    return 'Administrator' if instance.os_type == 'windows' else 'root'


class Agent(object):

    def __init__(self, host):
        self._host = host

    def quiesce(self, instance, image_meta):
        _require_agent(image_meta)
        self._host.get_guest(instance).freeze_filesystems()

    def unquiesce(self, instance, image_meta):
        _require_agent(image_meta)
        self._host.get_guest(instance).thaw_filesystems()

    def set_admin_password(self, instance, new_pass):
        """Sets the password of the guest's administrator (admin_user).

        Mapped for nova's compute manager as by the in-tree driver: an agent
        that does not answer is NotImplementedError (HTTP 501, the server
        ACTIVE), any other failure InternalError (HTTP 409, "error setting
        admin password"; what failed is in this service's log only, which
        keeps the password out of the answer).
        """
        _require_agent(instance.image_meta)
        user = admin_user(instance)
        try:
            self._host.get_guest(instance).set_user_password(user, new_pass)
        except guest_mod.AgentUnresponsive as e:
            LOG.warning('Cannot set the password of %s: %s', user, e,
                        instance=instance)
            raise NotImplementedError(str(e))
        LOG.info('Password of %s set', user, instance=instance)
        _save_encrypted_password(instance, new_pass)


def _save_encrypted_password(instance, new_pass):
    """As the in-tree driver does: a server with an RSA key pair gets the
    new password encrypted with that key in its system metadata, where
    the metadata service and nova's os-server-password give it back.
    """
    key = instance.key_data if 'key_data' in instance else None
    if not key or not key.startswith('ssh-rsa'):
        return
    encrypted = crypto.ssh_encrypt_text(key, new_pass)
    # (convert_password never uses its context)
    instance.system_metadata.update(password.convert_password(
        None, base64.encode_as_text(encrypted)))
    instance.save()
