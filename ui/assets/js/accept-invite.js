import { passwordPage } from "./password-page.js";

passwordPage({ formId: "invite-form", endpoint: "/api/auth/invitation/accept" });
