"""Installs the `cooperative_tf` library and its `pipelines` input package.

TensorFlow comes through an extra, so that each machine gets the right build:
    pip install -e '.[cpu]'        # tensorflow-cpu, machines without a GPU
    pip install -e '.[gpu]'        # tensorflow with the CUDA libraries
    pip install -e '.[cpu,test]'   # plus pytest, to run the tests
"""

from setuptools import find_packages, setup

TF_VERSION = "2.21.*"

setup(
    name="cooperative_tf",
    version="0.1.0",
    description=("Conditional generation by cooperative learning of a fast "
                 "policy and a slow Langevin planner (Keras 3 / TensorFlow)."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["cooperative_tf", "cooperative_tf.*",
                                    "pipelines", "pipelines.*"]),
    package_data={"pipelines": ["sample/*", "sample/**/*"]},
    include_package_data=True,
    install_requires=[
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9.6",
        # tensorflow-datasets needs these to prepare (not only load) data.
        "importlib_resources",
        "etils[epath]",
        "numpy>=1.26",
        "absl-py>=2.0",
        # Image files are checked and decoded with Pillow so errors name the file.
        "pillow>=10",
        # --config=experiment.yaml
        "pyyaml>=6",
        # The run's summaries (tf.summary needs it; tensorflow-cpu lacks it).
        "tensorboard>=2.20",
    ],
    extras_require={
        "cpu": [f"tensorflow-cpu=={TF_VERSION}"],
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],
        # matplotlib: the test-time compute chart is tested too; dill:
        # tfds.testing (our builders' DatasetBuilderTestCase) imports it;
        # pytest-xdist: the suite runs in two processes (README).
        "test": ["pytest>=8", "pytest-xdist>=3.5", "matplotlib>=3.7",
                 "dill"],
        # tools/plot_quality.py draws the README's curves.
        "plot": ["matplotlib>=3.7"],
    },
    entry_points={"console_scripts": [
        "cooperative-tf=cooperative_tf.launch:run",
        "cooperative-tf-reproduce=cooperative_tf.reproduce:run"]},
)
