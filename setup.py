"Builds fastprune from the metadata in settings.ini (its one home)."
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
lic = licenses[cfg['license']]
min_python = cfg['min_python']
requirements = cfg['requirements'].split()
dev_requirements = cfg['dev_requirements'].split()
console_scripts = [s for s in cfg.get('console_scripts', '').split() if s]

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    keywords=cfg['keywords'].split(),
    author=cfg['author'],
    author_email=cfg['author_email'],
    license=lic[0],
    url=f"https://github.com/{cfg['user']}/{cfg['repo']}",
    classifiers=[f'Development Status :: {statuses[int(cfg["status"])]}', 'Intended Audience :: Developers',
                 f'License :: {lic[1]}', 'Natural Language :: English',
                 f'Programming Language :: Python :: {min_python}'],
    packages=setuptools.find_packages(include=['fastprune', 'fastprune.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements},
    python_requires=f'>={min_python}',
    zip_safe=False,
    entry_points={'console_scripts': console_scripts, 'nbdev': [f"{cfg['lib_name']}={cfg['lib_name']}._modidx:d"]},
)
