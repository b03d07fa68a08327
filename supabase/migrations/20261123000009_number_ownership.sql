-- WhatsApp numbers are connected by onboarding (the service role), not by org admins.
--
-- Inbound deliveries are routed to the org whose number has the delivery's phone_number_id,
-- and replies go out with the platform's one access token. An admin who could write a
-- phone_number_id could claim another business's number before it is connected: receive its
-- customers' messages and answer from it. So users may only rename a number's display form;
-- connecting one (checking with the Graph API that it belongs to the org's WABA) is a
-- service-role step.

drop policy if exists whatsapp_numbers_insert_admin on public.whatsapp_numbers;
revoke insert, update on public.whatsapp_numbers from authenticated;
grant update (display_phone_number) on public.whatsapp_numbers to authenticated;
