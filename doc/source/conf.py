# Sphinx configuration of the nova_altdriver documentation.

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
]

project = 'nova_altdriver'
copyright = 'nova_altdriver developers'
openstackdocs_repo_name = 'openstack/nova-altdriver'
openstackdocs_bug_project = 'nova-altdriver'
openstackdocs_auto_name = False
master_doc = 'index'
exclude_patterns = []
pygments_style = 'native'
html_theme = 'openstackdocs'
