import pytest
import torch

from crlkit.errors import CrlkitError
from crlkit.models import make_model
from crlkit.models.architectures import ConvDecoder, ConvEncoder, FactorDiscriminator


@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 64, 64), (1, 32, 32), (3, 16, 48)])
def test_conv_encoder_decoder_shapes(shape):
    enc, dec = ConvEncoder(shape, 20), ConvDecoder(shape, 10)
    x = torch.rand(3, *shape)
    assert enc(x).shape == (3, 20)
    assert dec(torch.randn(3, 10)).shape == (3, *shape)


def test_standard_architecture_parameter_count():
    # conv 32-32-64-64 k4 on 1 channel, FC 1024->256, heads 256->20; decoder mirrored (64x64).
    enc, dec = ConvEncoder((1, 64, 64), 20), ConvDecoder((1, 64, 64), 10)
    conv = (1 * 32 * 16 + 32) + (32 * 32 * 16 + 32) + (32 * 64 * 16 + 64) + (64 * 64 * 16 + 64)
    fc = (1024 * 256 + 256) + (256 * 20 + 20)
    assert sum(p.numel() for p in enc.parameters()) == conv + fc
    dfc = (10 * 256 + 256) + (256 * 1024 + 1024)
    deconv = (64 * 64 * 16 + 64) + (64 * 32 * 16 + 32) + (32 * 32 * 16 + 32) + (32 * 1 * 16 + 1)
    assert sum(p.numel() for p in dec.parameters()) == dfc + deconv


def test_discriminator_is_6x1000_leaky_relu():
    d = FactorDiscriminator(10)
    linears = [m for m in d.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [1000] * 6 + [2]
    assert all(isinstance(m, torch.nn.LeakyReLU) for m in d.net if not isinstance(m, torch.nn.Linear))


def test_shape_mismatch_is_named():
    with pytest.raises(CrlkitError, match="divisible by 16"):
        make_model("beta_vae", (1, 50, 50))
    with pytest.raises(CrlkitError, match="vector observations"):
        make_model("beta_vae", (1, 64, 64), architecture="mlp")


def test_auto_architecture_and_reconstruction():
    img = make_model("vae", (1, 32, 32))
    vec = make_model("vae", (6,))
    assert isinstance(img.encoder, ConvEncoder) and img.reconstruction == "bernoulli"
    assert vec.reconstruction == "l2" and vec.encode(torch.randn(4, 6)).shape == (4, 10)
    with pytest.raises(CrlkitError, match="reconstruction"):
        make_model("vae", (6,), reconstruction="poisson")
