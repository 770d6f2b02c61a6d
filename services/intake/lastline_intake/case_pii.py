"""What intake keeps of a case's client PII, encrypted in ``cases.pii`` (bound to ``case:<case id>``).

The client as most recently submitted, and per referring partner the referral contact, notes and
documents: everything the case packet shows a placed volunteer, nothing that matching needs.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict

from lastline_intake.pii import Keyring
from lastline_shared.contracts.submissions import CaseSubmission, Client, DocumentRef, ReferralContact


class ReferralPii(BaseModel):
    model_config = ConfigDict(frozen=True)

    partner_id: str
    external_id: str
    referral_contact: ReferralContact | None = None
    notes: str | None = None
    documents: tuple[DocumentRef, ...] = ()


class CasePii(BaseModel):
    model_config = ConfigDict(frozen=True)

    client: Client
    referrals: tuple[ReferralPii, ...] = ()

    def with_submission(self, partner_id: str, submission: CaseSubmission) -> CasePii:
        """This PII with the submission's client, and its referral details replacing that partner's."""
        referral = referral_pii(partner_id, submission)
        others = tuple(
            r
            for r in self.referrals
            if (r.partner_id, r.external_id) != (referral.partner_id, referral.external_id)
        )
        return CasePii(client=submission.client, referrals=(*others, referral))


def referral_pii(partner_id: str, submission: CaseSubmission) -> ReferralPii:
    return ReferralPii(
        partner_id=partner_id,
        external_id=submission.external_id,
        referral_contact=submission.referral_contact,
        notes=submission.notes,
        documents=submission.documents,
    )


def case_aad(case_id: UUID) -> bytes:
    return f"case:{case_id}".encode()


def encrypt_case_pii(keyring: Keyring, case_id: UUID, pii: CasePii) -> bytes:
    return keyring.encrypt_json(pii, aad=case_aad(case_id))


def decrypt_case_pii(keyring: Keyring, case_id: UUID, blob: bytes) -> CasePii:
    return keyring.decrypt_model(blob, CasePii, aad=case_aad(case_id))
