# setup.py: builds kiln's one extension, kiln._C, from the C core (src/*/*.c, src/*/*/*.c)
# and the CPython bindings (python/kiln/_C/*.c); `setup.py build_ext --inplace` for development.
import glob
import os

from setuptools import Extension, find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def sources(pattern):
    # Relative paths keep setuptools happy about sources outside the package.
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


ext = Extension(
    "kiln._C",
    sources=sources("src/*/*.c") + sources("src/*/*/*.c") + sources("python/kiln/_C/*.c"),
    include_dirs=["include", "src"],
    depends=sources("include/*") + sources("src/*/*.h") + sources("src/*/*/*.h") + sources("python/kiln/_C/*.h"),
    extra_compile_args=["-std=c11", "-O2", "-fopenmp", "-D_GNU_SOURCE", "-fvisibility=hidden"],
    extra_link_args=["-fopenmp"],
    libraries=["dl", "m"],
)

setup(
    name="kiln",
    version="0.1.0",
    description="A deep-learning framework: a lazy graph of meta-operators, fused and JIT-compiled",
    package_dir={"": "python"},
    packages=find_packages("python"),
    ext_modules=[ext],
    python_requires=">=3.8",
    install_requires=["numpy", "Pillow"],
)
