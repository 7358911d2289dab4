"""Fleet tools for clinics: utilisation and downtime of LEVER units (``kneeload fleet``)."""
