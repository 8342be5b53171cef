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
    # A registration again for an address whose account was never verified (it replaces it).
    ACCOUNT_REGISTRATION_RENEW = "account.registration_renew"
    EMAIL_VERIFY = "account.email_verify"
    EMAIL_CHANGE = "account.email_change"
    PASSWORD_RESET = "account.password_reset"  # noqa: S105 (an action name, not a secret)
    PASSWORD_CHANGE = "account.password_change"  # noqa: S105 (an action name, not a secret)
    PROFILE_UPDATE = "profile.update"
    # Corrections accepted on a rectification request, applied by the privacy officer (P23).
    PROFILE_RECTIFY = "profile.rectify"
    NOTICE_PREFERENCE_SET = "notice_preference.set"
    IDENTITY_LINK = "identity.link"
    IDENTITY_UNLINK = "identity.unlink"
    SIGN_IN_REFUSED = "sign_in.refused"
    AUTHORIZATION_CODE_REUSE = "authorization_code.reuse"
    REFRESH_TOKEN_REUSE = "refresh_token.reuse"  # noqa: S105 (an action name, not a secret)
    CONSENT_GRANT = "consent.grant"
    CONSENT_WITHDRAW = "consent.withdraw"
    CONSENT_OBJECT = "consent.object"
    # A visitor's consent entries attached to the account that signed in from its browser.
    CONSENT_MERGE = "consent.merge"
    PRIVACY_REQUEST_SUBMIT = "privacy_request.submit"
    PRIVACY_REQUEST_REGISTER = "privacy_request.register"
    PRIVACY_REQUEST_ASSIGN = "privacy_request.assign"
    PRIVACY_REQUEST_VERIFY_IDENTITY = "privacy_request.verify_identity"
    PRIVACY_REQUEST_START = "privacy_request.start"
    PRIVACY_REQUEST_COMPLETE = "privacy_request.complete"
    PRIVACY_REQUEST_REJECT = "privacy_request.reject"
    PRIVACY_REQUEST_EXTEND = "privacy_request.extend"
    # A duplicate rectification's corrections added to the open request it was linked to.
    PRIVACY_REQUEST_MERGE_CORRECTIONS = "privacy_request.merge_corrections"
    # P25: a completed restriction request restricts its subject's processing; the officer's
    # decision to lift it, then (once the subject was told) the lifting itself.
    RESTRICTION_APPLY = "restriction.apply"
    RESTRICTION_LIFT = "restriction.lift"
    RESTRICTION_LIFTED = "restriction.lifted"
    # P13: legal holds placed and lifted, legal disclosures recorded.
    LEGAL_HOLD_PLACE = "legal_hold.place"
    LEGAL_HOLD_LIFT = "legal_hold.lift"
    LEGAL_DISCLOSURE_RECORD = "legal_disclosure.record"
    # P24: an erasure blocked by a hold, each step of one carried out, and its end.
    ERASURE_BLOCK = "erasure.block"
    ERASURE_STEP = "erasure.step"
    ERASURE_COMPLETE = "erasure.complete"
    # P29: staff found an account to be a child's.
    CHILD_ACCOUNT_FLAG = "child_account.flag"
    PRIVACY_EXPORT_CREATE = "privacy_export.create"
    PRIVACY_EXPORT_DOWNLOAD = "privacy_export.download"
    # An export's job was given up (its last attempt failed): the export is marked failed.
    PRIVACY_EXPORT_FAIL = "privacy_export.fail"
    # A download refused: its purpose says why (not_authorised, gone).
    PRIVACY_EXPORT_DOWNLOAD_REFUSE = "privacy_export.download_refuse"
    # A retention run deleted what outlived its period (P21): one record per category and run,
    # the category as its entity id (counts are in the run's output, never per person).
    RETENTION_DELETE = "retention.delete"
    POLICY_PUBLISH = "policy.publish"
    POLICY_ACCEPT = "policy.accept"
    ANNOUNCEMENT_SEND = "announcement.send"
    CAMPAIGN_CREATE = "campaign.create"
    CAMPAIGN_SEND = "campaign.send"
    PROCESSOR_ADD = "processor.add"
    PROCESSOR_UPDATE = "processor.update"
    PROCESSOR_REMOVE = "processor.remove"
    TICKET_CREATE = "ticket.create"
    TICKET_REPLY = "ticket.reply"
    TICKET_NOTE = "ticket.note"
    TICKET_ASSIGN = "ticket.assign"
    TICKET_MOVE = "ticket.move"
    TICKET_STATUS = "ticket.status"
    PAYMENT_METHOD_ADD = "payment_method.add"
    PAYMENT_METHOD_REMOVE = "payment_method.remove"
    STAFF_INVITE = "staff.invite"
    STAFF_INVITATION_ACCEPT = "staff.invitation_accept"
    STAFF_INVITATION_REVOKE = "staff.invitation_revoke"
    ROLE_GRANT = "role.grant"
    ROLE_REVOKE = "role.revoke"
    TEAM_CREATE = "team.create"
    TEAM_RENAME = "team.rename"
    TEAM_ARCHIVE = "team.archive"
    TEAM_MEMBERSHIP = "team.membership"
    TEAM_LEAD = "team.lead"
