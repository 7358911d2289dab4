"""Operations that span services (``kneeload init``)."""
