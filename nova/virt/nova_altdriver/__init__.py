from nova_altdriver.driver import AltDriver  # noqa: F401
