#!/bin/bash
# plugin.sh - DevStack plugin: nova-compute with nova_altdriver.
#
#   enable_plugin nova-altdriver <repository> [branch]
#
# stack install      installs the driver into nova's environment
# stack post-config  compute_driver = nova_altdriver.AltDriver, [altdriver]
#                    options from ALTDRIVER_* variables
# stack test-config  enables the tempest compute features the driver has

function install_nova_altdriver {
    setup_develop "$NOVA_ALTDRIVER_DIR"
    # nova only loads drivers from nova.virt.<name>, and an editable install
    # cannot put a file into nova's package: link the one-line shim there.
    local virt_dir
    virt_dir=$("$PYTHON" -c 'import os, nova.virt; print(os.path.dirname(nova.virt.__file__))')
    sudo ln -sfn "$NOVA_ALTDRIVER_DIR/nova/virt/nova_altdriver" \
        "$virt_dir/nova_altdriver"
}

function configure_nova_altdriver {
    iniset "$NOVA_CPU_CONF" DEFAULT compute_driver nova_altdriver.AltDriver
    local option variable
    for option in $NOVA_ALTDRIVER_OPTIONS; do
        variable=ALTDRIVER_${option^^}
        if [[ -n "${!variable:-}" ]]; then
            iniset "$NOVA_CPU_CONF" altdriver "$option" "${!variable}"
        fi
    done
    if [[ -z "${ALTDRIVER_VIRT_TYPE:-}" ]]; then
        iniset "$NOVA_CPU_CONF" altdriver virt_type "${LIBVIRT_TYPE:-kvm}"
    fi
}

function configure_tempest_for_nova_altdriver {
    local feature
    # (moves between nodes: tempest runs them with two compute nodes,
    # whose libvirtds reach each other at [altdriver] migration_uri)
    for feature in rescue stable_rescue snapshot shelve pause suspend \
            console_output resize cold_migration live_migration; do
        iniset "$TEMPEST_CONFIG" compute-feature-enabled "$feature" True
    done
    # Not (yet) supported by the driver.
    for feature in attach_encrypted_volume interface_attach change_password \
            spice_console serial_console; do
        iniset "$TEMPEST_CONFIG" compute-feature-enabled "$feature" False
    done
    # Cinder on Ceph RBD (devstack-plugin-ceph): the volumes it attaches,
    # extends and migrates (multiattach follows DevStack's
    # ENABLE_VOLUME_MULTIATTACH, which makes the volume type it needs)
    if is_service_enabled cinder; then
        iniset "$TEMPEST_CONFIG" volume-feature-enabled \
            extend_attached_volume True
        iniset "$TEMPEST_CONFIG" compute-feature-enabled swap_volume True
    fi
}

if is_service_enabled n-cpu; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing nova_altdriver"
        install_nova_altdriver
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring nova-compute for nova_altdriver"
        configure_nova_altdriver
    elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
        if is_service_enabled tempest; then
            configure_tempest_for_nova_altdriver
        fi
    fi
fi
