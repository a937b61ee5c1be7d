# Copyright (c) mmwsss contributors.
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmwsss module so that it lands in the registries.

    Registry ``locations`` already import lazily under the ``mmwsss`` scope;
    call this when building components outside a config (scripts, tests).

    Args:
        init_default_scope (bool): Whether to set the default scope to
            ``'mmwsss'``. Defaults to True.
    """
    import mmseg.datasets  # noqa: F401,F403
    import mmseg.engine  # noqa: F401,F403
    import mmseg.evaluation  # noqa: F401,F403
    import mmseg.models  # noqa: F401,F403

    import mmwsss.datasets  # noqa: F401,F403
    import mmwsss.engine  # noqa: F401,F403
    import mmwsss.evaluation  # noqa: F401,F403
    import mmwsss.models  # noqa: F401,F403
    import mmwsss.visualization  # noqa: F401,F403

    if init_default_scope:
        never_created = DefaultScope.get_current_instance() is None \
            or not DefaultScope.check_instance_created('mmwsss')
        if never_created:
            DefaultScope.get_instance('mmwsss', scope_name='mmwsss')
            return
        current_scope = DefaultScope.get_current_instance()
        if current_scope.scope_name != 'mmwsss':
            warnings.warn('The current default scope '
                          f'"{current_scope.scope_name}" is not "mmwsss", '
                          '`register_all_modules` will force the current '
                          'default scope to be "mmwsss". If this is not '
                          'expected, please set `init_default_scope=False`.')
            new_instance_name = f'mmwsss-{datetime.datetime.now()}'
            DefaultScope.get_instance(new_instance_name, scope_name='mmwsss')
