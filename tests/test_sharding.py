import ml_collections
import pytest

from videopoet_jax import sharding


@pytest.mark.parametrize(
  "shape, devices, expected",
  [
    ((-1, 1, 1), 8, (8, 1, 1)),
    ((2, -1, 1), 8, (2, 4, 1)),
    ((1, 1, 1), 8, (1, 1, 1)),
    ((2, 2, 2), 8, (2, 2, 2)),
  ],
)
def test_mesh_shape(shape, devices, expected):
  assert sharding.mesh_shape(shape, devices) == expected


@pytest.mark.parametrize(
  "shape, message", [((-1, -1, 1), "more than one"), ((3, -1, 1), "does not divide"), ((4, 4, 1), "needs 16")]
)
def test_bad_mesh_shapes(shape, message):
  with pytest.raises(ValueError, match=message):
    sharding.mesh_shape(shape, 8)


def test_make_mesh_names_axes():
  mesh = sharding.make_mesh(
    ml_collections.ConfigDict({"shape": (-1, 2, 1), "axes": ("data", "fsdp", "tensor")})
  )
  assert dict(mesh.shape) == {"data": 4, "fsdp": 2, "tensor": 1}
  assert sharding.data_parallel_size(mesh) == 8
