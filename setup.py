"""tfrec: ranking-aware losses and production pipelines for click and conversion models."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

# The stack is pinned together (see README, "The stack"): tensorflow-ranking 0.5.5 requires tensorflow < 2.16,
# so TensorFlow, tf-keras and tensorflow-serving-api stay on the 2.15 line; TensorFlow 2.15 needs numpy < 2.
INSTALL_REQUIRES = [
    "tensorflow>=2.15.0,<2.16",
    "tf-keras>=2.15.0,<2.16",
    "tensorflow-ranking==0.5.5",
    # tensorflow-recommenders is not a requirement: in TensorFlow 2.15 its layers (tfrs.layers.dcn.Cross among them)
    # subclass the `keras` package's Layer, not tf_keras's, so a tf_keras functional model does not track them: the
    # model lists none of the cross layer's weights and drops its kernel's L2 penalty from model.losses, and a save /
    # reload does not restore it. tfrec.layers.Cross implements DCN V2's cross layer (Eq. 1) on tf_keras instead.
    "tensorflow-serving-api>=2.15.0,<2.16",
    "apache-beam>=2.50,<3",
    # The TFRecord sink computes CRC-32C with crcmod's C extension (pipelines/criteo/tfrecord.py). Beam stopped
    # depending on crcmod in 2.65, so it is declared here.
    "crcmod>=1.7,<2",
    # Imported directly (serving/, export/), not only through TensorFlow: the gRPC runtime and protobuf messages.
    "grpcio>=1.48,<2",
    "protobuf>=3.20.3,<5",
    "numpy>=1.23.5,<2",
    "pyyaml>=5.4,<7",
    # Validates the config sections (tfrec/config): types, ranges, unknown keys, the model chosen by its name.
    "pydantic>=2,<3",
    "scikit-learn>=1.2,<2",
    "matplotlib>=3.6,<4",
    "scipy>=1.9,<2",  # the paired t-test of tfrec experiment (scikit-learn installs it too)
]

# pytest-xdist: the suite runs its test files in parallel processes (pytest.ini), one file per process.
TEST_REQUIRES = ["pytest>=7", "pytest-timeout>=2", "pytest-xdist>=3.5"]

# The `tfx` extra: tfrec's components, Trainer module and pipelines under TFX 1.15 (pipelines/tfx_native). TFX's own
# wheels (tfx, ml-pipelines-sdk) declare python<3.11 although everything they need has cp311 wheels, so on 3.11 it
# installs with `pip install --ignore-requires-python -c constraints-tfx.txt -e ".[tfx]"` (README, "TFX").
TFX_REQUIRES = [
    "tfx>=1.15.1,<1.16",
    "tensorflow-data-validation>=1.15.1,<1.16",
    "tensorflow-metadata>=1.15,<1.16",
    "ml-metadata>=1.15,<1.16",
    "absl-py>=1.0",
    # KubeflowV2DagRunner (the KFP v2 / Vertex AI pipeline JSON) imports kfp.pipeline_spec; 0.3 reads protobuf 4.
    "kfp-pipeline-spec>=0.3,<0.4",
]

with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    LONG_DESCRIPTION = f.read()

setup(
    name="tfrec",
    version="0.1.0",
    description="Ranking-aware losses, CTR / multi-task / pre-ranking models, Beam TFRecord pipelines and "
    "TF Serving export for TensorFlow / Keras 2.",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfrec", "tfrec.*", "pipelines", "pipelines.*", "export", "export.*",
                                    "serving", "serving.*"]),
    package_data={"tfrec": ["configs/*.yaml"]},
    include_package_data=True,
    python_requires=">=3.9,<3.12",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES, "tfx": TFX_REQUIRES},
    entry_points={"console_scripts": ["tfrec=tfrec.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
