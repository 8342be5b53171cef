"""Every action the audit trail records, and how its entries name fields.

Field names follow one convention: ``Type.field``, the GraphQL type and its camelCase
field (``User.email``, ``Ticket.requesterEmail``), as the read notes write them. A stored
attribute that no GraphQL field shows is named the same way (``User.password``,
``PaymentMethod.gatewayToken``, ``LinkedIdentity.issuer``).
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """What an audit entry records; the values are the strings stored in the trail."""

    PERSONAL_DATA_READ = "personal_data.read"
    ACCOUNT_CREATE = "account.create"
    ACCOUNT_DISABLE = "account.disable"
    ACCOUNT_ENABLE = "account.enable"
    ACCOUNT_SIGN_OUT_EVERYWHERE = "account.sign_out_everywhere"
    PROFILE_UPDATE = "profile.update"
    IDENTITY_LINK = "identity.link"
    IDENTITY_UNLINK = "identity.unlink"
    SIGN_IN_REFUSED = "sign_in.refused"
    AUTHORIZATION_CODE_REUSE = "authorization_code.reuse"
    REFRESH_TOKEN_REUSE = "refresh_token.reuse"  # noqa: S105 (an action name, not a secret)
    CONSENT_GRANT = "consent.grant"
    CONSENT_WITHDRAW = "consent.withdraw"
    PRIVACY_REQUEST_SUBMIT = "privacy_request.submit"
    TICKET_CREATE = "ticket.create"
    TICKET_REPLY = "ticket.reply"
    TICKET_NOTE = "ticket.note"
    TICKET_ASSIGN = "ticket.assign"
    TICKET_MOVE = "ticket.move"
    TICKET_STATUS = "ticket.status"
    PAYMENT_METHOD_ADD = "payment_method.add"
    PAYMENT_METHOD_REMOVE = "payment_method.remove"
