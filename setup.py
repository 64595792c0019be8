"""gdbext: GDB pretty-printers and heap forensics for C and C++ crashes.

``printers/`` and ``commands/`` live at the top of the checkout (they are the
GDB-facing adapters) but install as ``gdbext.printers`` and
``gdbext.commands``, so nothing lands in site-packages under a generic name.
"""
from setuptools import find_packages, setup

setup(
    name="gdbext",
    version="0.1.0",
    description="GDB pretty-printers and heap forensics for C/C++ crashes and core dumps",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["gdbext", "gdbext.*"]) + ["gdbext.printers", "gdbext.commands"],
    package_dir={
        "gdbext": "gdbext",
        "gdbext.printers": "printers",
        "gdbext.commands": "commands",
    },
    package_data={"gdbext": ["py.typed"]},
    install_requires=[
        "pyelftools>=0.29,<1",
        "construct>=2.10.60,<2.11",
        "capstone>=5.0,<6",
        "SQLAlchemy>=2.0,<2.1",
        "alembic>=1.12,<2",
        "zstandard>=0.19,<1",
        "lz4>=4.0,<5",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.50", "markdown-it-py>=3,<5", "psycopg[binary]>=3.1,<4", "pillow>=9,<12",
                 "PyYAML>=6,<7"],
        "postgresql": ["psycopg[binary]>=3.1,<4"],
    },
    entry_points={"console_scripts": ["gdbext = gdbext.cli:main"]},
)
