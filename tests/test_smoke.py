from crmcore.tenancy.models import Role


def test_business_fixture_gives_owner_context(ctx, other_ctx):
    assert ctx.business.slug == "acme"
    assert other_ctx.business.slug == "globex"
    assert ctx.role is Role.OWNER
