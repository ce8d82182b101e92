import { passwordPage } from "./password-page.js";

passwordPage({ formId: "reset-form", endpoint: "/api/auth/password-reset/confirm" });
