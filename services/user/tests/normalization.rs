//! Unicode normalisation over a real gRPC channel: decomposed display names and shipping-address
//! text reach the database in NFC (one code point for `é`, `ガ`), and length limits count the
//! composed characters.

mod common;

use common::*;
use mercato_platform::principal::Role;
use mercato_proto::mercato::common::v1 as pb_common;
use mercato_proto::mercato::user::v1::{
    RegisterRequest, UpdateCurrentUserRequest, UpdateShippingAddressRequest, User,
};
use mercato_user::testing::TestEnv;

fn decomposed_tokyo() -> pb_common::PostalAddress {
    pb_common::PostalAddress {
        // "山田 ガク" with ガ written as カ + combining dakuten.
        recipient_name: "山田 \u{30AB}\u{3099}\u{30AF}".to_owned(),
        recipient_name_kana: "ヤマ\u{30BF}\u{3099} \u{30AB}\u{3099}\u{30AF}".to_owned(),
        country_code: "JP".to_owned(),
        postal_code: "1500001".to_owned(),
        region: "東京都".to_owned(),
        locality: "渋谷区".to_owned(),
        address_line1: "神宮前1-2-3 Cafe\u{301}".to_owned(),
        address_line2: "\u{30D2}\u{3099}ル 5F".to_owned(),
        phone_number: "090-1234-5678".to_owned(),
    }
}

#[tokio::test]
async fn decomposed_names_and_addresses_are_stored_in_nfc() {
    let env = TestEnv::new().await.expect("test resources");
    let service = env.start(|_| {}).await.expect("service starts");
    let uri = service.grpc_uri();

    let registered = auth_client(&uri)
        .register(RegisterRequest {
            email: email(),
            password: PASSWORD.to_owned(),
            display_name: "Rene\u{301}e".to_owned(),
        })
        .await
        .expect("registration succeeds")
        .into_inner();
    let me = user_id(&registered);
    assert_eq!(
        registered.user.expect("a user").display_name,
        "Ren\u{e9}e",
        "the answer is composed"
    );
    let stored: String = sqlx::query_scalar("SELECT display_name FROM users WHERE user_id = $1")
        .bind(me)
        .fetch_one(env.database().pool())
        .await
        .expect("read display name");
    assert_eq!(stored, "Ren\u{e9}e");
    assert_eq!(stored.chars().count(), 5, "é is one code point");

    // 100 decomposed characters are 200 code points: they fit the 100-character limit once
    // composed.
    let updated = user_client(&uri)
        .update_current_user(as_user(
            UpdateCurrentUserRequest {
                user: Some(User {
                    display_name: "\u{30AB}\u{3099}".repeat(100),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".to_owned()],
                }),
            },
            me,
            &[Role::Buyer],
        ))
        .await
        .expect("a composed name of 100 characters is valid")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(updated.display_name, "\u{30AC}".repeat(100));

    user_client(&uri)
        .update_shipping_address(as_user(
            UpdateShippingAddressRequest {
                shipping_address: Some(decomposed_tokyo()),
                update_mask: None,
            },
            me,
            &[Role::Buyer],
        ))
        .await
        .expect("address saved");
    let (recipient_name, kana, line1, line2): (String, String, String, String) = sqlx::query_as(
        "SELECT recipient_name, recipient_name_kana, address_line1, address_line2 \
         FROM shipping_addresses WHERE user_id = $1",
    )
    .bind(me)
    .fetch_one(env.database().pool())
    .await
    .expect("read address");
    assert_eq!(recipient_name, "山田 \u{30AC}\u{30AF}");
    assert_eq!(kana, "ヤマ\u{30C0} \u{30AC}\u{30AF}");
    assert_eq!(line1, "神宮前1-2-3 Caf\u{e9}");
    assert_eq!(line2, "\u{30D3}ル 5F");
    for text in [&recipient_name, &kana, &line1, &line2] {
        assert!(
            !text.contains('\u{3099}') && !text.contains('\u{301}'),
            "no combining marks are left in {text:?}"
        );
    }
    service.stop().await.expect("clean stop");
}
